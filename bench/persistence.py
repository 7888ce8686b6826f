"""Sessions that last (issue 10): what checkpoints cost and how fast sessions come back.

    .venv/bin/python bench/persistence.py [--database-url URL] [--rounds 2] [--seconds 8]
    .venv/bin/python bench/persistence.py --only cost|restore|stream

(a) cost: one checkpoint of a session with 1,000 and with 100,000 epochs of history: the
    worker's build (ms), the database write (ms) and its bytes, for the first (full) checkpoint
    and for the incremental ones that follow (300 new epochs each: 5 s at the page's pace of 60).
(b) restore: 200 stored sessions (1,000 epochs each) brought back on warm workers (2 worker
    processes), as a server start does: seconds for all 200, and per session.
(c) stream: bench/stream.py's 50-session figures (per-session epochs/s and frames/s, /health
    p99) with checkpointing off (checkpoint_seconds = 0) and on (the default 5 s), servers
    started alternately in one run (off, on, off, on, ...) so the machine's load hits both;
    the target: "on" no more than 10% below "off". Each half also prints the cores its server
    used and the other programs' (the machine's busy time from /proc/stat minus this bench's
    process tree): a half that shared the machine shows as such; and the epochs of all its
    sessions per core-second its server used (what checkpointing costs per epoch, whatever
    share of the machine the others left).
Every database is a temporary SQLite file unless --database-url names another (PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from app.api.owners import OwnerRegistry, token_hash  # noqa: E402
from app.sessions.checkpointing import CheckpointState, build_checkpoint  # noqa: E402
from app.sessions.config import SessionConfig  # noqa: E402
from app.sessions.manager import SessionManager  # noqa: E402
from app.sessions.session import TrainingSession  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.storage import Storage  # noqa: E402

NEW_ROWS = 300  # epochs between two checkpoints: 5 s (checkpoint_seconds) at speed 60


def settings_for(data_dir: str, database_url: str | None, **extra: Any) -> Settings:
    return Settings(data_dir=Path(data_dir), database_url=database_url, **extra)


def session_with_history(epochs: int, session_id: str = "bench") -> TrainingSession:
    """A default session whose history holds `epochs` rows (synthetic values: the cost of a
    checkpoint depends on the row count, not on what the rows say)."""
    session = TrainingSession(SessionConfig(), session_id)
    rng = np.random.default_rng(0)
    width = len(session.history.columns)
    for row in rng.random((epochs, width)):
        session.history.append(row)
    session.epoch = epochs
    return session


def grow(session: TrainingSession, rows: int) -> None:
    width = len(session.history.columns)
    for row in np.random.default_rng(session.epoch).random((rows, width)):
        session.history.append(row)
    session.epoch += rows


def checkpoint_cost(database_url: str | None) -> None:
    """(a): build and write times and bytes, full then incremental, at 1,000 and 100,000."""
    print("== (a) checkpoint cost per session "
          f"({'SQLite' if database_url is None else database_url.split(':')[0]})")
    print(f"{'history':>9} {'checkpoint':>22} {'build ms':>9} {'write ms':>9} {'bytes':>10}")
    with tempfile.TemporaryDirectory() as data_dir:
        storage = Storage(settings_for(data_dir, database_url))
        storage.migrate()
        try:
            for epochs in (1_000, 100_000):
                session = session_with_history(epochs, f"cost-{epochs}")
                state = CheckpointState()
                started = time.perf_counter()
                full = build_checkpoint(session, state, 0.0)
                build_full = time.perf_counter() - started
                started = time.perf_counter()
                storage.save_checkpoint(full)
                write_full = time.perf_counter() - started
                print(f"{epochs:>9,} {'first (all rows)':>22} {build_full * 1e3:>9.2f} "
                      f"{write_full * 1e3:>9.2f} {full.size:>10,}")
                builds, writes, sizes = [], [], []
                for round_ in range(20):
                    grow(session, NEW_ROWS)
                    started = time.perf_counter()
                    cp = build_checkpoint(session, state, float(round_))
                    builds.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    storage.save_checkpoint(cp)
                    writes.append(time.perf_counter() - started)
                    sizes.append(cp.size)
                print(f"{epochs:>9,} {f'next (+{NEW_ROWS} rows), median':>22} "
                      f"{statistics.median(builds) * 1e3:>9.2f} "
                      f"{statistics.median(writes) * 1e3:>9.2f} "
                      f"{int(statistics.median(sizes)):>10,}")
                stored = storage.load_session(session.id)
                assert stored is not None and len(stored.history) == session.epoch
        finally:
            storage.close()


async def restore_many(count: int, database_url: str | None, workers: int) -> None:
    """(b): `count` stored sessions restored on warm workers, as a server start does."""
    print(f"== (b) restore: {count} stored sessions (1,000 epochs each), {workers} worker "
          "processes")
    with tempfile.TemporaryDirectory() as data_dir:
        settings = settings_for(data_dir, database_url, worker_processes=workers,
                                standby_worker=False, max_sessions=max(200, count))
        storage = Storage(settings)
        storage.migrate()
        manager = SessionManager(settings, OwnerRegistry(settings.max_owners), storage)
        await manager.start()  # an empty database: nothing to restore yet
        try:
            started = time.perf_counter()
            while not all(w.ready for w in manager.workers):
                await asyncio.sleep(0.05)
            print(f"workers warm after {time.perf_counter() - started:.2f} s (not counted)")
            template = session_with_history(1_000)
            owner = token_hash("bench-owner")
            for i in range(count):
                template.id = f"restore-{i:04d}"
                cp = build_checkpoint(template, CheckpointState(), 0.0)
                storage.save_checkpoint(
                    type(cp)(**{**cp.__dict__, "owner_hash": owner, "address": "127.0.0.1"})
                )
            assert manager.persistence is not None
            started = time.perf_counter()
            await manager.persistence.start()
            elapsed = time.perf_counter() - started
            back = [h for h in manager.handles.values() if h.status == "paused"]
            print(f"restored {len(back)} of {count} in {elapsed:.2f} s "
                  f"({elapsed / count * 1e3:.1f} ms per session, wall; database threads "
                  f"{settings.database_threads})")
        finally:
            await manager.stop()
            storage.close()


def busy_split() -> tuple[float, float, float]:
    """(CPU seconds the whole machine has used, CPU seconds this process and its descendants
    have used: the bench's client, the server and its workers, CPU seconds of the kernel's
    threads: kthreadd's tree, e.g. the writeback of the database's files) so far, from /proc."""
    sys.path.insert(0, str(ROOT / "bench"))
    from classroom import machine_busy_seconds
    from stream import tree_cpu_seconds

    own, children = tree_cpu_seconds(os.getpid())
    return machine_busy_seconds(), own + children, sum(tree_cpu_seconds(2))


async def stream_run(
    stream: Any, base: str, sessions: int, seconds: float, warmup: float, server: int
) -> tuple[list[Any], list[float], float, tuple[float, float, float]]:
    """bench/stream.py's run() as its owners: each client sends its session's owner token
    (`auth`) before `play` (issue 9 made a token-less play read-only, which stream.py's
    client still sends), then counts frames between start and stop the same way.

    Also (server cores, other programs' cores, kernel threads' cores) during the window: the
    server's process tree; the machine's busy time (/proc/stat) minus this bench's whole process
    tree and the kernel's threads; the kernel's threads (kthreadd's tree)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = [(await http.post("/api/sessions", json={})).json() for _ in range(sessions)]
    ws_base = base.replace("http", "ws", 1)
    tallies = [stream.Tally() for _ in created]
    start, stop = asyncio.Event(), asyncio.Event()

    latencies: list[float] = []
    tasks = [asyncio.create_task(stream.watch(ws_base + s["ws_url"], s["owner_token"], t,
                                               start, stop))
             for s, t in zip(created, tallies, strict=True)]
    await asyncio.sleep(warmup)
    start.set()
    health = asyncio.create_task(stream.poll_health(base, latencies, stop))
    began = time.perf_counter()
    (busy0, ours0, kernel0), server0 = busy_split(), sum(stream.tree_cpu_seconds(server))
    await asyncio.sleep(seconds)
    (busy1, ours1, kernel1), server1 = busy_split(), sum(stream.tree_cpu_seconds(server))
    stop.set()
    elapsed = time.perf_counter() - began
    await asyncio.gather(*tasks, health)
    kernel = (kernel1 - kernel0) / elapsed
    others = ((busy1 - busy0) - (ours1 - ours0)) / elapsed - kernel
    return tallies, latencies, elapsed, (
        (server1 - server0) / elapsed, max(0.0, others), kernel)


def stream_on_off(rounds: int, seconds: float, sessions: int, period: float) -> None:
    """(c): bench/stream.py's concurrent scenario, checkpointing off vs on, alternately."""
    sys.path.insert(0, str(ROOT / "bench"))
    import httpx
    import stream  # bench/stream.py

    print(f"== (c) {sessions} sessions streaming, checkpointing off vs on "
          f"(checkpoint_seconds {period:g}), {rounds} round(s) of {seconds:g} s each")
    results: dict[str, list[tuple[float, float, float, float]]] = {"off": [], "on": []}
    for round_ in range(rounds):
        # Alternate which goes first, so a load drift within a round hits both alike.
        for mode in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
            with tempfile.TemporaryDirectory() as data_dir:
                os.environ["NN_PLAYGROUND_DATA_DIR"] = data_dir
                # One client address runs all 50 (issue 9's per-address quotas are 60 and 30).
                os.environ["NN_PLAYGROUND_MAX_RUNNING_PER_ADDRESS"] = str(sessions)
                os.environ["NN_PLAYGROUND_MAX_SESSIONS_PER_ADDRESS"] = str(sessions + 10)
                os.environ["NN_PLAYGROUND_CHECKPOINT_SECONDS"] = "0" if mode == "off" else str(
                    period)
                port = stream.free_port()
                base = f"http://127.0.0.1:{port}"
                server = stream.start_server(port, None)
                try:
                    stream.wait_ready(base)
                    # Warm the workers (the first create waits for a worker's warm-up).
                    httpx.post(f"{base}/api/sessions", json={}, timeout=60)
                    tallies, latencies, window, (server_cores, others, kernel) = asyncio.run(
                        stream_run(stream, base, sessions, seconds, 2.0, server.pid)
                    )
                finally:
                    server.terminate()
                    server.wait(30)
            epochs = [(t.last_epoch - (t.first_epoch or 0)) / window for t in tallies]
            frames = [t.frames / window for t in tallies]
            ordered = sorted(latencies) or [0.0]
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
            # Epochs of all sessions per core-second the server used: the cost of an epoch,
            # whatever share of the machine the other programs left it.
            per_core = sum(epochs) / server_cores if server_cores else 0.0
            row = (min(epochs), statistics.median(epochs), statistics.median(frames), p99,
                   server_cores, others, per_core, kernel)
            results[mode].append(row)
            print(f"round {round_ + 1} {mode:>3}: epochs/s per session min {row[0]:.0f} median "
                  f"{row[1]:.0f}; frames/s median {row[2]:.1f}; /health p99 {row[3]:.1f} ms; "
                  f"server {server_cores:.2f} cores ({per_core:.0f} epochs per core-second), "
                  f"other programs {others:.2f} cores, kernel threads {kernel:.2f} "
                  f"(load average {os.getloadavg()[0]:.1f})")
    names = ("epochs/s min", "epochs/s median", "frames/s median", "/health p99 ms",
             "server cores", "others' cores", "epochs/core-s", "kernel threads")
    for label, summary in (("mean", statistics.mean), ("median", statistics.median)):
        off = [summary(v) for v in zip(*results["off"], strict=True)]
        on = [summary(v) for v in zip(*results["on"], strict=True)]
        print(f"{label + ' of rounds':<18}{'off':>10}{'on':>10}{'on/off':>9}")
        for name, a, b in zip(names, off, on, strict=True):
            print(f"{name:<18}{a:>10.1f}{b:>10.1f}{b / a if a else 0:>9.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--only", choices=("cost", "restore", "stream"), default=None)
    parser.add_argument("--sessions", type=int, default=200, help="(b) stored sessions")
    parser.add_argument("--workers", type=int, default=2, help="(b) worker processes")
    parser.add_argument("--rounds", type=int, default=2, help="(c) off/on pairs")
    parser.add_argument("--seconds", type=float, default=8.0, help="(c) measured window")
    parser.add_argument("--stream-sessions", type=int, default=50, help="(c) sessions")
    parser.add_argument("--checkpoint-seconds", type=float, default=5.0, help="(c) when on")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    if args.only in (None, "cost"):
        checkpoint_cost(args.database_url)
    if args.only in (None, "restore"):
        asyncio.run(restore_many(args.sessions, args.database_url, args.workers))
    if args.only in (None, "stream"):
        stream_on_off(args.rounds, args.seconds, args.stream_sessions, args.checkpoint_seconds)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
