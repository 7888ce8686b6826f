"""How long saving a long run stalls the other sessions of its worker (issue 10, H2).

    .venv/bin/python bench/run_save_stall.py [--epochs 100000] [--repeat 3]

A real server with one worker process holds session A (its history stretched to --epochs rows,
as bench/runs.py builds it) and session B, playing. While A is saved (POST
/api/sessions/{A}/runs), a thread reads B (GET /api/sessions/{B}) every 10 ms: the worker
answers calls between two training turns, so the slowest read is the worker's longest stall
(plus the request's own ~2-5 ms). Also printed: B's epochs trained during the save, the save's
time, and the CPU the machine's other programs used in the window (the figure only counts when
they used <= 0.15 cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runs import free_port, long_session, start_server, wait_ready
from stream import tree_cpu_seconds


def machine_cpu_seconds() -> float:
    """CPU seconds every program used so far (/proc/stat: user, nice, system)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]
    return sum(int(f) for f in fields) / 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, tempfile.mkdtemp(prefix="nn-stall-bench-"))
    try:
        wait_ready(base)
        with httpx.Client(base_url=base, timeout=120) as http:
            long_id, auth = long_session(http, args.epochs)
            other = http.post("/api/sessions", json={}, headers=auth).json()
            http.post(f"/api/sessions/{other['id']}/commands", json={"type": "play"},
                      headers=auth).raise_for_status()
            time.sleep(1.0)
            print("save_ms  longest_read_ms  median_read_ms  B_epochs_in_save  "
                  "others_cores")
            for _ in range(args.repeat):
                reads: list[float] = []
                ends: list[float] = []
                stop = threading.Event()

                def poll(
                    reads: list[float] = reads, ends: list[float] = ends,
                    stop: threading.Event = stop,
                ) -> None:
                    with httpx.Client(base_url=base, timeout=120) as poller:
                        while not stop.is_set():
                            started = time.perf_counter()
                            poller.get(f"/api/sessions/{other['id']}").raise_for_status()
                            ends.append(time.perf_counter())
                            reads.append((ends[-1] - started) * 1000)
                            time.sleep(0.01)

                before = http.get(f"/api/sessions/{other['id']}").json()["epoch"]
                own_before = sum(tree_cpu_seconds(server.pid))
                machine_before, wall_before = machine_cpu_seconds(), time.perf_counter()
                poller = threading.Thread(target=poll)
                poller.start()
                started = time.perf_counter()
                http.post(f"/api/sessions/{long_id}/runs", json={},
                          headers=auth).raise_for_status()
                save_ms = (time.perf_counter() - started) * 1000
                stop.set()
                poller.join()
                wall = time.perf_counter() - wall_before
                others = (machine_cpu_seconds() - machine_before
                          - (sum(tree_cpu_seconds(server.pid)) - own_before)) / wall
                after = http.get(f"/api/sessions/{other['id']}").json()["epoch"]
                # The bench's own client (this process) counts among the others: a bound.
                slowest = reads.index(max(reads))
                where = (ends[slowest] - started) * 1000
                print(f"{save_ms:7.0f}  {max(reads):15.1f}  {statistics.median(reads):14.1f}  "
                      f"{after - before:16d}  {others:12.2f}  (slowest read ended at "
                      f"{where:.0f} ms of the save)")
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
