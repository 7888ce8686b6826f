"""JSON-lines logs (app/ops/logs.py): a killed worker is named, 429s are logged with the
setting, and an owner token never reaches the log, whatever path it takes."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.ops.logs import JsonFormatter, Redact, log_event, redact
from tests.conftest import LiveServer, make_settings

TOKEN = "Zq8y1o7Kx0lM3nB5vC2xJ9hG4fD6sA7pL0kQ1wE2rT3"  # shaped like an owner token (43 chars)


def log_lines(err: str) -> list[dict[str, Any]]:
    """The JSON log lines among captured stderr (every line of ours must parse)."""
    lines = [line for line in err.splitlines() if line.startswith('{"ts"')]
    return [json.loads(line) for line in lines]


def events(err: str, name: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(err) if line.get("event") == name]


def test_a_killed_worker_is_logged_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL a real worker process: one error line names the worker, its pid, its exit code
    and the sessions lost; its watcher's close is logged as `lost`; the restart is counted.
    Checkpoints off (checkpoint_seconds = 0): with them the session is restored and its
    watcher stays connected (tests/persistence/test_persist_worker_kill.py)."""
    app = create_app(make_settings(worker_processes=1, checkpoint_seconds=0))
    with TestClient(app) as client:
        session_id = client.post("/api/sessions", json={}).json()["id"]
        manager = app.state.manager
        pid = manager.workers[0].runner.pid
        with client.websocket_connect(f"/ws/sessions/{session_id}") as ws:
            assert json.loads(ws.receive()["text"])["type"] == "hello"
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while manager.workers[0].runner.pid == pid:
                assert time.monotonic() < deadline, "the worker was not replaced"
                time.sleep(0.05)
            while ws.receive().get("type") != "websocket.close":
                pass
        metrics = client.get("/metrics").text
    err = capsys.readouterr().err
    [lost] = events(err, "worker_lost")
    assert lost["level"] == "error"
    assert lost["logger"] == "nn_playground.ops"
    assert (lost["worker"], lost["pid"], lost["sessions_lost"]) == (0, pid, 1)
    assert lost["exitcode"] in (-signal.SIGKILL, None)  # None: not reaped yet when logged
    closes = [line["reason"] for line in events(err, "websocket_closed")]
    assert closes == ["lost"]
    assert "nn_worker_restarts_total 1.0" in metrics
    assert 'nn_websocket_closes_total{reason="lost"} 1.0' in metrics


def test_a_client_that_stops_reading_is_logged_as_slow(capsys: pytest.CaptureFixture[str]) -> None:
    """A real server, a websocket that never reads (tiny receive buffer) on a session playing
    with big frames: within send_timeout_seconds of its first unsent byte the server drops it,
    logs `websocket_closed` with reason slow_client (a warning) and counts it in /metrics."""
    with LiveServer(send_timeout_seconds=1.0) as server, httpx.Client(base_url=server.url) as http:
        created = http.post("/api/sessions", json={"grid_resolution": 200}).json()
        auth = {"Authorization": f"Bearer {created['owner_token']}"}
        http.post(f"/api/sessions/{created['id']}/commands", json={"type": "play"}, headers=auth)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"GET /ws/sessions/{created['id']} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .encode()
        )
        deadline = time.monotonic() + 15
        while "nn_slow_client_closes_total 1.0" not in http.get("/metrics").text:
            assert time.monotonic() < deadline, "the non-reading client was not closed"
            time.sleep(0.1)
        sock.close()
    [closed] = events(capsys.readouterr().err, "websocket_closed")
    assert (closed["reason"], closed["level"]) == ("slow_client", "warning")
    assert closed["session"] == created["id"]
    assert closed["client"] == "127.0.0.1"


def test_429s_are_logged_with_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    """The rate limiter's 429 and a quota's 429 (max_sessions here) each give one warning line
    that names the setting, the client and the route; a burst of refusals from one address
    gives one line a second, not one per request."""
    limited = TestClient(create_app(make_settings(rate_limit_per_second=1, rate_limit_burst=3)))
    statuses = [limited.get("/api/registry").status_code for _ in range(8)]
    assert statuses == [200, 200, 200, 429, 429, 429, 429, 429]
    with TestClient(create_app(make_settings(max_sessions=1))) as client:
        assert client.post("/api/sessions", json={}).status_code == 201
        assert client.post("/api/sessions", json={}).status_code == 429
    err = capsys.readouterr().err
    [limited] = events(err, "rate_limited")
    assert limited["level"] == "warning"
    assert (limited["setting"], limited["limit"], limited["retry_after"]) == (
        "rate_limit_burst", 3, 1
    )
    assert limited["refused"] == 1  # the refusals that followed within a second are counted
    #                                 in the next line, not written one by one
    assert (limited["client"], limited["path"]) == ("testclient", "/api/registry")
    [quota] = events(err, "quota_exceeded")
    assert quota["route"] == "/api/sessions"
    assert quota["client"] == "testclient"
    assert "max_sessions = 1" in quota["detail"]


def test_a_token_never_reaches_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    """Tokens sent where logs look (Authorization on limited and refused requests, the
    websocket auth message of a connection that is logged) and tokens passed to the logger by
    mistake (message, args, fields) are all written as [redacted]."""
    settings = make_settings(rate_limit_per_second=1, rate_limit_burst=2, max_sessions=1)
    with TestClient(create_app(settings)) as client:
        created = client.post("/api/sessions", json={})
        token = created.json()["owner_token"]
        session_id = created.json()["id"]
        with client.websocket_connect(f"/ws/sessions/{session_id}") as ws:
            ws.send_json({"type": "auth", "token": token})
        bearer = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            client.post("/api/sessions", json={}, headers=bearer)
        log_event("test", authorization=f"Bearer {token}", owner_token=token, note=f"t={token}")
        logging.getLogger("nn_playground.ops").warning("token %s in %s", token, TOKEN)
    err = capsys.readouterr().err
    assert events(err, "rate_limited") and events(err, "websocket_closed")
    assert token not in err
    assert TOKEN not in err
    [line] = events(err, "test")
    assert line["authorization"] == line["owner_token"] == "[redacted]"
    assert line["note"] == "t=[redacted]"
    assert any(x.get("message") == "token [redacted] in [redacted]" for x in log_lines(err))


def test_redaction_and_format() -> None:
    """The filter rewrites Bearer values, token-shaped words and secret-named keys; a line is
    one JSON object with ts (UTC), level, logger and event or message."""
    assert redact(f"Authorization: Bearer {TOKEN}") == "Authorization: Bearer [redacted]"
    assert redact(f"basic {TOKEN[:10]}") == "basic [redacted]"
    assert redact({"Authorization": "x", "session": "iEYzCngJew4b", "n": [TOKEN]}) == {
        "Authorization": "[redacted]", "session": "iEYzCngJew4b", "n": ["[redacted]"]
    }
    record = logging.makeLogRecord(
        {"name": "nn_playground.ops", "levelno": logging.INFO, "levelname": "INFO",
         "msg": "worker_lost", "event": "worker_lost", "worker": 1, "token": TOKEN}
    )
    Redact().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["ts"].endswith("Z")
    assert {k: v for k, v in line.items() if k != "ts"} == {
        "level": "info", "logger": "nn_playground.ops", "event": "worker_lost", "worker": 1,
        "token": "[redacted]",
    }


def test_uvicorn_logs_become_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """run() hands uvicorn uvicorn_log_config(): its error and access lines are JSON, redacted."""
    import logging.config

    from app.ops.logs import uvicorn_log_config

    logging.config.dictConfig(uvicorn_log_config("info"))
    try:
        logging.getLogger("uvicorn.error").warning("Authorization: Bearer %s", TOKEN)
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200
        )
    finally:
        for name in ("uvicorn", "uvicorn.access"):  # leave the loggers as uvicorn found them
            logging.getLogger(name).handlers.clear()
            logging.getLogger(name).propagate = True
    lines = log_lines(capsys.readouterr().err)
    assert [(x["logger"], x["level"]) for x in lines] == [
        ("uvicorn.error", "warning"), ("uvicorn.access", "info")
    ]
    assert lines[0]["message"] == "Authorization: Bearer [redacted]"
    assert lines[1]["message"] == '127.0.0.1:5000 - "GET /health HTTP/1.1" 200'
