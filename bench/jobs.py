"""Jobs (issue 9): the long work of one client against a real server, and what others see.

    .venv/bin/python bench/jobs.py [--workers 2] [--seconds 8]

A fresh `nn-playground` process (bench/abuse_lib.Server). For each long piece of work below, one
client starts it while a prober polls GET /health every ~20 ms: printed are the time to the first
answer (202 + a job, after job_wait_seconds), /health p50/p99/max while the job runs, the job's
progress after `--seconds`, how long a DELETE of the job takes and whether the work stopped (the
race's epoch or the session's epoch no longer moves), and the web process's RSS.
- the worst race step the limits allow: 8 racers, 5,000 spiral points, batch 1, 8 hidden layers
  of 16, 200 x 200 grids, 100 epochs (issue 9: 37 s holding a threadpool slot, no cancel);
- a REST `step` of 100,000 epochs (issue 9: a request held 23.9 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.abuse_lib import Server

WORST_RACE: dict[str, Any] = {
    "config": {"dataset": "spiral", "n_samples": 5000, "batch_size": 1,
               "layers": [{"units": 16}] * 8, "grid_resolution": 200},
    "racers": [{"optimizer": name} for name in
               ("sgd", "momentum", "adagrad", "rmsprop", "adam", "sgd", "adam", "momentum")],
}
LONG_STEP_SESSION: dict[str, Any] = {"dataset": "xor"}


class Prober(threading.Thread):
    """GET /health every ~20 ms; latencies in ms."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.latencies, self.stopping = base, [], False

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self.stopping:
                start = time.perf_counter()
                http.get("/health")
                self.latencies.append((time.perf_counter() - start) * 1000)
                time.sleep(0.02)

    def figures(self) -> str:
        values = sorted(self.latencies)
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        return (f"/health p50 {statistics.median(values):.1f} p99 {p99:.1f} "
                f"max {values[-1]:.1f} ms ({len(values)} probes)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_job(http: httpx.Client, label: str, start: Any, position: Any, seconds: float,
            base: str, pid: int) -> None:
    """Start a job (start() -> response), probe /health while it runs, cancel it, report."""
    prober = Prober(base)
    prober.start()
    began = time.perf_counter()
    response, headers = start()
    first = time.perf_counter() - began
    job = response.json()["job"] if response.status_code == 202 else None
    print(f"== {label}\n   answer: {response.status_code} in {first:.2f} s"
          + (f", job {job['kind']} {job['done']}/{job['total']}" if job else ""))
    if job is None:
        prober.stopping = True
        return
    time.sleep(seconds)
    progress = http.get(f"/api/jobs/{job['id']}", headers=headers).json()
    prober.stopping = True
    prober.join()
    began = time.perf_counter()
    cancelled = http.delete(f"/api/jobs/{job['id']}", headers=headers).json()
    cancel = time.perf_counter() - began
    before = position()
    time.sleep(0.5)
    after = position()
    print(f"   after {seconds:g} s: {progress['state']} {progress['done']}/{progress['total']}; "
          f"{prober.figures()}")
    print(f"   DELETE: {cancelled['state']} in {cancel * 1000:.0f} ms; position {before} -> "
          f"{after} 0.5 s later ({'stopped' if before == after else 'STILL MOVING'}); "
          f"web RSS {rss_mb(pid):.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with Server(workers=args.workers) as server, httpx.Client(
        base_url=server.base, timeout=120
    ) as http:
        assert server.process is not None
        pid = server.process.pid
        print(f"server: {args.workers} workers; web RSS {rss_mb(pid):.0f} MB at start")
        created = http.post("/api/races", json=WORST_RACE)
        race = created.json()
        token = {"Authorization": f"Bearer {race['owner_token']}"}
        run_job(
            http, "worst race step (8 racers x 5,000 points, batch 1, 8x16, grid 200), 100 epochs",
            lambda: (http.post(f"/api/races/{race['id']}/step", json={"epochs": 100},
                               headers=token), token),
            lambda: http.get(f"/api/races/{race['id']}").json()["epoch"],
            args.seconds, server.base, pid,
        )
        http.delete(f"/api/races/{race['id']}", headers=token)
        session = http.post("/api/sessions", json=LONG_STEP_SESSION).json()
        owner = {"Authorization": f"Bearer {session['owner_token']}"}
        run_job(
            http, "REST step of 100,000 epochs (default xor session)",
            lambda: (http.post(f"/api/sessions/{session['id']}/commands",
                               json={"type": "step", "n": 100_000}, headers=owner), owner),
            lambda: http.get(f"/api/sessions/{session['id']}").json()["epoch"],
            args.seconds, server.base, pid,
        )


if __name__ == "__main__":
    main()
