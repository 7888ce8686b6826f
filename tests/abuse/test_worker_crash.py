"""Issue 9: "a worker crash looks like a delete to clients (`removed`, 1000) and nothing is
logged". Against the shared real server; this module runs last (it kills the server's workers,
which are replaced).
"""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
from websockets.sync.client import connect

from bench.abuse_lib import Server
from tests.abuse.conftest import http


def test_a_worker_crash_is_lost_not_removed_and_is_logged(server: Server) -> None:
    """SIGKILL the workers while a client watches a session: the client gets `{"type":
    "lost"}` and close 1011 (a delete is `removed` + 1000), the server logs a worker's death,
    and new workers serve new sessions."""
    with http(server, "127.0.0.60") as client:
        created = client.post("/api/sessions", json={}).json()
    workers = server.worker_pids()
    assert workers, "no worker process found"
    log_before = len(server.log())
    kinds: list[str] = []
    with connect(f"{server.ws_base}{created['ws_url']}", max_size=None) as ws:
        assert json.loads(ws.recv(5))["type"] == "hello"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                message = ws.recv(deadline - time.monotonic())
                if isinstance(message, str):
                    kinds.append(json.loads(message)["type"])
        except Exception:  # the server's close ends recv()
            pass
        code = ws.close_code
    assert "lost" in kinds and "removed" not in kinds, kinds
    assert code == 1011, code
    time.sleep(0.5)
    logged = server.log()[log_before:].lower()
    assert "worker" in logged and any(word in logged for word in ("died", "lost", "exit")), (
        logged[-2000:])
    deadline = time.monotonic() + 20
    status = 0
    while time.monotonic() < deadline and status != 201:
        status = httpx.post(f"{server.base}/api/sessions", json={}, timeout=10).status_code
        time.sleep(0.2)
    assert status == 201
