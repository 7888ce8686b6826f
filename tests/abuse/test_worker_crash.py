"""Issue 9: "a worker crash looks like a delete to clients (`removed`, 1000) and nothing is
logged"; issue 10: its sessions come back. Against the shared real server; this module runs
last (it kills the server's workers, which are replaced).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from bench.abuse_lib import Server
from tests.abuse.conftest import http


def started_at(pid: int) -> int:
    """A process's start time (clock ticks since boot, /proc/<pid>/stat field 22)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[19])


def warm_spare(server: Server) -> list[int]:
    """The worker pids once the spare (one more than the CPUs) runs and had ~4 s to warm up."""
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + 30
    while True:
        workers = server.worker_pids()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        if len(workers) > (os.cpu_count() or 1) and all(
            uptime - started_at(pid) / ticks > 4 for pid in workers
        ):
            return workers
        assert time.monotonic() < deadline, f"no warm spare worker: {workers}"
        time.sleep(0.2)


def test_a_worker_crash_restores_its_sessions_on_the_same_socket_and_is_logged(
    server: Server,
) -> None:
    """SIGKILL the workers (not the warm spare) while a client watches a session: the client
    keeps its connection and gets `{"type": "restored"}` then a fresh `hello` within 10 s
    (issue 10; issue 9 made it `lost` + 1011 instead of a delete's `removed` + 1000), the
    server logs a worker's death, and new workers serve new sessions."""
    with http(server, "127.0.0.60") as client:
        created = client.post("/api/sessions", json={}).json()
    workers = warm_spare(server)
    spare = max(workers, key=started_at)  # the standby starts seconds after the workers
    workers.remove(spare)
    log_before = len(server.log())
    kinds: list[str] = []
    with connect(f"{server.ws_base}{created['ws_url']}", max_size=None) as ws:
        assert json.loads(ws.recv(5))["type"] == "hello"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        # Its session comes back on the warm spare (a fresh process would take seconds).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and kinds[-2:] != ["restored", "hello"]:
            message = ws.recv(deadline - time.monotonic())
            if isinstance(message, str):
                kinds.append(json.loads(message)["type"])
        assert ws.close_code is None  # the same connection goes on
    assert kinds[-2:] == ["restored", "hello"], kinds
    assert "lost" not in kinds and "removed" not in kinds, kinds
    time.sleep(0.5)
    logged = server.log()[log_before:].lower()
    assert "worker" in logged and any(word in logged for word in ("died", "lost", "exit")), (
        logged[-2000:])
    deadline = time.monotonic() + 40
    status = 0
    while time.monotonic() < deadline and status != 201:
        # A replaced worker process may still be starting (seconds on a busy machine).
        status = httpx.post(f"{server.base}/api/sessions", json={}, timeout=30).status_code
        time.sleep(0.2)
    assert status == 201
