"""Saved runs against a real server (issue 10): what a save, a share link's view, a fork and a
gallery page cost, at 1,000 and 100,000 epochs of history.

    .venv/bin/python bench/runs.py [--epochs 1000 100000] [--gallery 200] [--repeat 3]

A session of the default net is trained 3 epochs, exported, its history stretched to N rows of
synthetic curves and imported (as tests/browser/test_responsiveness.py does), then saved. For
each N: POST /api/sessions/{id}/runs (median ms), the bytes stored (the gzip export, read from
the SQLite file) against the export's JSON, GET /api/runs/{slug}/view cold (built by a worker)
and warm (cached), its bytes, POST /api/runs/{slug}/fork (ms). Then `--gallery` public runs and
GET /api/runs?limit=50 (median ms). One uvicorn process, one worker, a temporary data dir.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int, data_dir: str) -> subprocess.Popen[bytes]:
    """uvicorn in its own process with one worker, no rate limit, room for many runs."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NN_PLAYGROUND_DATA_DIR=data_dir,
               NN_PLAYGROUND_RATE_LIMIT_PER_SECOND="0", NN_PLAYGROUND_WORKER_PROCESSES="1",
               NN_PLAYGROUND_MAX_RUNS_PER_OWNER="100000",
               NN_PLAYGROUND_MAX_SESSIONS_PER_OWNER="1000")
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_ready(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start within 60 s")


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[float, httpx.Response]:
    """(milliseconds, response) of one request."""
    start = time.perf_counter()
    response: httpx.Response = call(*args, **kwargs)
    response.raise_for_status()
    return (time.perf_counter() - start) * 1000, response


def long_session(http: httpx.Client, epochs: int) -> tuple[str, dict[str, str]]:
    """(id, auth headers) of a session whose history holds `epochs` rows."""
    created = http.post("/api/sessions", json={}).json()
    auth = {"Authorization": f"Bearer {created['owner_token']}"}
    http.post(f"/api/sessions/{created['id']}/commands", json={"type": "step", "n": 3},
              headers=auth)
    export = http.get(f"/api/sessions/{created['id']}/export", headers=auth).json()
    steps = np.arange(epochs)
    export["history"] = {
        name: (0.05 + (column[0] or 0.5) * np.exp(-steps / (epochs / 5))
               + 0.01 * np.sin(steps / 50)).tolist()
        for name, column in export["history"].items()
    }
    export["epoch"] = epochs
    imported = http.post("/api/sessions/import", json=export, headers=auth, timeout=120)
    imported.raise_for_status()
    return imported.json()["id"], auth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--gallery", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="nn-runs-bench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, data_dir)
    try:
        wait_ready(base)
        database = sqlite3.connect(Path(data_dir) / "playground.db")
        with httpx.Client(base_url=base, timeout=120) as http:
            print("epochs   save_ms  stored_KB  export_KB  view_cold_ms  view_warm_ms  "
                  "view_KB  fork_ms")
            for epochs in args.epochs:
                session_id, auth = long_session(http, epochs)
                saves, slug = [], ""
                for _ in range(args.repeat):
                    ms, response = timed(http.post, f"/api/sessions/{session_id}/runs", json={},
                                         headers=auth)
                    saves.append(ms)
                    slug = response.json()["slug"]
                (stored,) = database.execute(
                    "select length(export) from runs where slug = ?", (slug,)).fetchone()
                whole = http.get(f"/api/runs/{slug}").content
                cold, view = timed(http.get, f"/api/runs/{slug}/view")
                warm = statistics.median(
                    timed(http.get, f"/api/runs/{slug}/view")[0] for _ in range(args.repeat))
                forks = []
                for _ in range(args.repeat):
                    ms, fork = timed(http.post, f"/api/runs/{slug}/fork")
                    forks.append(ms)
                    created = fork.json()
                    http.delete(f"/api/sessions/{created['id']}",
                                headers={"Authorization": f"Bearer {created['owner_token']}"})
                print(f"{epochs:>6}  {statistics.median(saves):8.1f}  {stored / 1e3:9.1f}  "
                      f"{len(whole) / 1e3:9.1f}  {cold:12.1f}  {warm:12.1f}  "
                      f"{len(view.content) / 1e3:7.1f}  {statistics.median(forks):7.1f}")
            session_id, auth = long_session(http, 100)
            for i in range(args.gallery):
                http.post(f"/api/sessions/{session_id}/runs", json={"public": True,
                          "title": f"run {i}"}, headers=auth).raise_for_status()
            lists = [timed(http.get, "/api/runs?limit=50")[0] for _ in range(20)]
            print(f"gallery: {args.gallery} public runs, GET /api/runs?limit=50 median "
                  f"{statistics.median(lists):.1f} ms, max {max(lists):.1f} ms")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
