"""A real uvicorn server (one worker process) on a free port, driven over HTTP and websockets."""

import json
import os
import signal
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from app.sessions.frames import decode_frame
from tests.conftest import LiveServer


def test_rest_and_websocket_reach_the_same_session_in_a_worker_process(live_server: str) -> None:
    with httpx.Client(base_url=live_server, timeout=30.0) as http:
        assert http.get("/health").json()["workers"] == 1
        session = http.post("/api/sessions", json={"dataset": "xor", "frame_rate": 20.0}).json()
        ws_url = live_server.replace("http", "ws", 1) + session["ws_url"]
        epochs: list[int] = []
        owner = {"authorization": f"Bearer {session['owner_token']}"}
        with connect(ws_url, origin=Origin(live_server), compression=None) as ws:
            assert json.loads(ws.recv())["type"] == "hello"
            ws.send(json.dumps({"type": "auth", "token": session["owner_token"]}))
            ws.send(json.dumps({"type": "step", "n": 200}))
            header: dict[str, object] = {}
            while header.get("epoch") != 200 or header.get("status") != "paused":
                message = ws.recv(timeout=30)
                if isinstance(message, bytes):
                    header, arrays = decode_frame(message)
                    first = int(header["epochs_first"])  # type: ignore[call-overload]
                    epochs += range(first, first + len(arrays["epochs"]))
            # The REST view of the session is the one the socket drove.
            public = http.get(f"/api/sessions/{session['id']}").json()
            assert public["epoch"] == 200 and public["weights_hash"] == header["weights_hash"]
        assert epochs == list(range(1, 201))
        assert http.delete(f"/api/sessions/{session['id']}", headers=owner).status_code == 204


def test_a_foreign_origin_cannot_open_the_socket(live_server: str) -> None:
    with httpx.Client(base_url=live_server) as http:
        session = http.post("/api/sessions", json={}).json()
        http.delete(f"/api/sessions/{session['id']}",
                    headers={"authorization": f"Bearer {session['owner_token']}"})
    url = live_server.replace("http", "ws", 1) + session["ws_url"]
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin=Origin("http://evil.example"))
    assert refused.value.response.status_code == 403


def test_a_dead_worker_is_replaced_and_its_sessions_come_back() -> None:
    """Issue 10: a killed worker's sessions came back as 404. Now a fresh worker takes its
    place and the session is restored from its checkpoint (same epoch and weights, paused)."""
    with LiveServer(worker_processes=1) as server, httpx.Client(base_url=server.url) as http:
        session = http.post("/api/sessions", json={}, timeout=30).json()
        owner = {"authorization": f"Bearer {session['owner_token']}"}
        stepped = http.post(f"/api/sessions/{session['id']}/commands",
                            json={"type": "step", "n": 3}, headers=owner, timeout=30).json()
        manager = server.app.state.manager
        worker = manager.workers[0].runner
        os.kill(worker.pid, signal.SIGKILL)  # our own child process
        worker.join(10)
        deadline = time.monotonic() + 10
        while manager.workers[0].runner is worker:
            assert time.monotonic() - deadline < 0, "the dead worker was not replaced"
            time.sleep(0.05)
        back = http.get(f"/api/sessions/{session['id']}", timeout=30).json()
        assert (back["epoch"], back["weights_hash"], back["status"]) == (
            3, stepped["weights_hash"], "paused")
        assert http.get("/health").json() == {"status": "ok", "sessions": 1, "workers": 1}
        assert http.post("/api/sessions", json={}, timeout=30).status_code == 201
