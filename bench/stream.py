"""Live-stream benchmark against a real uvicorn server on loopback (issues 3 and 8).

    .venv/bin/python bench/stream.py [--seconds 8] [--sessions 50] [--workers N]
    .venv/bin/python bench/stream.py --paced 100 [--speed 60] [--seconds 20] [--warmup 5]

(a) one session with the default net, playing: epochs/s trained, frames/s received (full frames),
    bytes per frame; (b) many concurrent playing sessions: per-session epochs/s and frames/s,
    and the latency of GET /health meanwhile (p50/p99). Targets (issue 3): (a) >= 1,000 epochs/s,
    >= 30 frames/s, frames <= 16 KB; (b) every session >= 60 epochs/s and >= 10 frames/s,
    /health p99 < 100 ms. The server runs in its own process; this client is asyncio +
    websockets (RECIPES: the simplest bounded load generator here).
(c) `--paced N` (issue 8, capacity at the learner's pace): N default sessions at the page's
    default pace (speed 60), each watched by one websocket client as the page does. Targets:
    every session trains >= 95% of its pace with >= 20 frames/s, /health p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    """What one websocket client saw during the measured window."""

    frames: int = 0
    bytes: int = 0
    max_bytes: int = 0
    first_epoch: int | None = None
    last_epoch: int = 0
    rows: int = 0
    first_at: float = 0.0  # arrival times of the first and last full frame in the window
    last_at: float = 0.0


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(port: int, workers: int | None) -> subprocess.Popen[bytes]:
    """uvicorn in its own process, as `scripts/run.sh` would serve it."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", NN_PLAYGROUND_MAX_SESSIONS="500")
    # One client address holds every session (issue 9's per-address quotas are for strangers),
    # and the server's database is a throwaway one (issue 10), not ./data.
    env["NN_PLAYGROUND_MAX_SESSIONS_PER_ADDRESS"] = "500"
    env["NN_PLAYGROUND_MAX_RUNNING_PER_ADDRESS"] = "500"
    env["NN_PLAYGROUND_DATA_DIR"] = tempfile.mkdtemp(prefix="nn-stream-bench-")
    # One client address opens every session and socket here: no per-address rate limit.
    env["NN_PLAYGROUND_RATE_LIMIT_PER_SECOND"] = "0"
    if workers is not None:
        env["NN_PLAYGROUND_WORKER_PROCESSES"] = str(workers)
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--ws-per-message-deflate", "false", "--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_ready(base: str) -> None:
    """Poll /health until the server answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


def tree_cpu_seconds(root: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by a process and by its descendants (/proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    own, total, todo = stats.get(root, (0, 0.0))[1], 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == pid]
    return own, total - own


def header_of(message: bytes) -> dict[str, Any]:
    """The JSON header of a binary frame (docs/protocol.md)."""
    (length,) = struct.unpack(">I", message[:4])
    header: dict[str, Any] = json.loads(message[4:4 + length])
    return header


async def watch(
    url: str, token: str, tally: Tally, start: asyncio.Event, stop: asyncio.Event
) -> None:
    """Play one session and count what arrives between start and stop."""
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))  # the owner may play
        await ws.send(json.dumps({"type": "play"}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            if isinstance(message, str) or not start.is_set():
                continue
            header = header_of(message)
            tally.rows += header["sections"]["epochs"]["shape"][0]
            if header.get("rows_only"):
                continue  # older epoch rows sent ahead of a full frame: not a frame drawn
            if tally.first_epoch is None:
                tally.first_epoch = header["epoch"]
                tally.rows = 0
            tally.last_epoch = header["epoch"]
            tally.frames += 1
            tally.bytes += len(message)
            tally.max_bytes = max(tally.max_bytes, len(message))
        await ws.send(json.dumps({"type": "pause"}))


# The paced client reads only what it counts from the JSON header (100 sockets at ~30 frames/s
# each: a full json.loads of every header would make the client compete with the server).
EPOCH = re.compile(rb'"epoch":(\d+)')
ROWS_ONLY = b'"rows_only":true'


async def watch_paced(
    url: str, token: str, tally: Tally, start: asyncio.Event, stop: asyncio.Event
) -> None:
    """Play one paced session like the page does and time its full frames between start/stop."""
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))  # the owner may play
        await ws.send(json.dumps({"type": "play"}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            if isinstance(message, str) or not start.is_set():
                continue
            (length,) = struct.unpack(">I", message[:4])
            header = message[4:4 + length]
            if ROWS_ONLY in header:
                continue
            match = EPOCH.search(header)
            assert match is not None, "a frame without an epoch"
            now = time.perf_counter()
            if tally.first_epoch is None:
                tally.first_epoch, tally.first_at = int(match[1]), now
            tally.last_epoch, tally.last_at = int(match[1]), now
            tally.frames += 1
            tally.bytes += len(message)
        await ws.send(json.dumps({"type": "pause"}))


async def poll_health(base: str, latencies: list[float], stop: asyncio.Event) -> None:
    """GET /health every 20 ms, recording each latency."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while not stop.is_set():
            began = time.perf_counter()
            await http.get("/health")
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.02)


async def run(
    base: str, sessions: int, seconds: float, warmup: float, server: int,
    speed: float | None = None,
) -> tuple[list[Tally], list[float], float, tuple[float, float]]:
    """Create `sessions` default sessions (at `speed`), stream them all, measure for `seconds`."""
    config = {} if speed is None else {"speed": speed}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = [(await http.post("/api/sessions", json=config)).json()
                   for _ in range(sessions)]
    ws_base = base.replace("http", "ws", 1)
    tallies = [Tally() for _ in created]
    start, stop = asyncio.Event(), asyncio.Event()
    latencies: list[float] = []
    watcher = watch if speed is None else watch_paced
    tasks = [asyncio.create_task(watcher(ws_base + s["ws_url"], s["owner_token"], t, start, stop))
             for s, t in zip(created, tallies, strict=True)]
    await asyncio.sleep(warmup)
    start.set()
    health = asyncio.create_task(poll_health(base, latencies, stop))
    began, (web_before, workers_before) = time.perf_counter(), tree_cpu_seconds(server)
    await asyncio.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - began
    web_after, workers_after = tree_cpu_seconds(server)
    server_cores = ((web_after - web_before) / elapsed, (workers_after - workers_before) / elapsed)
    await asyncio.gather(*tasks, health)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for s in created:
            await http.delete(f"/api/sessions/{s['id']}",
                              headers={"Authorization": f"Bearer {s['owner_token']}"})
    return tallies, latencies, elapsed, server_cores


# Issue 3's targets: (min epochs/s, min frames/s, max bytes/frame or None, max /health p99 s).
TARGETS = {1: (1000.0, 30.0, 16 * 1024, None), 50: (60.0, 10.0, None, 0.100)}


def report(
    name: str,
    tallies: list[Tally],
    latencies: list[float],
    window: float,
    cores: tuple[float, float],
) -> None:
    """Print per-session rates, /health latency and the CPU the server got."""
    epochs = [(t.last_epoch - (t.first_epoch or 0)) / window for t in tallies]
    frames = [t.frames / window for t in tallies]
    per_frame = [t.bytes / t.frames for t in tallies if t.frames]
    gaps = sum(t.rows < t.last_epoch - (t.first_epoch or 0) for t in tallies)
    print(f"== {name}: {len(tallies)} session(s), {window:.1f} s window; the server used "
          f"{sum(cores):.2f} cores of {os.cpu_count()} (web process {cores[0]:.2f}, workers "
          f"{cores[1]:.2f}; the rest went to this client and other programs)")
    print(f"epochs/s per session: min {min(epochs):.0f}  median {statistics.median(epochs):.0f}"
          f"  total {sum(epochs):.0f}")
    print(f"frames/s per session: min {min(frames):.1f}  median {statistics.median(frames):.1f}")
    if per_frame:
        print(f"bytes/frame: mean {statistics.mean(per_frame):.0f}  "
              f"max {max(t.max_bytes for t in tallies)}")
    print(f"sessions whose frames missed epoch rows: {gaps}")
    p99 = 0.0
    if latencies:
        ordered = sorted(latencies)
        p50 = ordered[len(ordered) // 2] * 1000
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        print(f"/health: {len(ordered)} requests, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    target = TARGETS.get(len(tallies))
    if target is not None:
        min_epochs, min_frames, max_bytes, max_p99 = target
        checks = [f"epochs/s {min(epochs) / min_epochs:.2f}x of {min_epochs:.0f}",
                  f"frames/s {min(frames) / min_frames:.2f}x of {min_frames:.0f}"]
        if max_bytes is not None:
            checks.append(f"bytes/frame {max(t.max_bytes for t in tallies) / max_bytes:.2f}x "
                          f"of the {max_bytes} cap")
        if max_p99 is not None:
            checks.append(f"/health p99 {p99 / 1000 / max_p99:.2f}x of the {max_p99 * 1000:.0f} "
                          "ms cap")
        print("vs issue 3 targets (worst session): " + "; ".join(checks))


# Issue 8's targets at the learner's pace: share of the pace, frames/s, /health p99 (s).
PACED_TARGETS = (0.95, 20.0, 0.100)


def report_paced(
    tallies: list[Tally], latencies: list[float], window: float, cores: tuple[float, float],
    speed: float,
) -> None:
    """Per-session epochs/s against the pace, frames/s, /health latency, the server's CPU."""
    # Epochs/s between the first and the last frame received in the window (their arrival
    # times), so a frame's position in its 33 ms interval does not skew a 20 s figure.
    rates = [(t.last_epoch - (t.first_epoch or 0)) / max(t.last_at - t.first_at, 1e-9)
             for t in tallies]
    frames = [t.frames / window for t in tallies]
    ordered = sorted(latencies) or [0.0]
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    share, min_frames, max_p99 = PACED_TARGETS
    print(f"== (c) paced: {len(tallies)} sessions at speed {speed:g}, {window:.1f} s window; "
          f"the server used {sum(cores):.2f} cores of {os.cpu_count()} (web process "
          f"{cores[0]:.2f}, workers {cores[1]:.2f})")
    print(f"epochs/s per session: min {min(rates):.1f}  median {statistics.median(rates):.1f}  "
          f"max {max(rates):.1f}  total {sum(rates):.0f} (pace {speed:g})")
    print(f"frames/s per session: min {min(frames):.1f}  median {statistics.median(frames):.1f}"
          f"  total {sum(frames):.0f}; bytes/frame mean "
          f"{sum(t.bytes for t in tallies) / max(1, sum(t.frames for t in tallies)):.0f}")
    print(f"/health: {len(latencies)} requests, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    below = sum(r < share * speed for r in rates)
    print(f"vs issue 8 targets (worst session): epochs/s {min(rates) / speed:.3f} of the pace "
          f"(target >= {share}; {below} sessions below); frames/s {min(frames) / min_frames:.2f}x"
          f" of {min_frames:g}; /health p99 {p99 / max_p99:.2f}x of the "
          f"{max_p99 * 1000:.0f} ms cap")


def cost_split(rounds: int) -> None:
    """CPU time of each step of a paced session, in-process (the default net, 100 sessions).

    Where a watched session's time goes, per epoch and per frame, on one thread: the epoch
    (training, then the inference pass for both losses), the frame in the worker (the grids
    through the float32 forward, the header, encoding the state, pickling a batch), and the
    web process's share before the socket write (unpickling, merging, the client's message).
    """
    sys.path.insert(0, str(ROOT))
    import pickle

    from app.engine import fast
    from app.sessions import frame_builder
    from app.sessions.config import SessionConfig
    from app.sessions.frames import frame_bytes, merge_parts, preencode, split_rows
    from app.sessions.session import TrainingSession
    from app.settings import get_settings

    fast.warm_up()
    sessions = [TrainingSession(SessionConfig(speed=60.0), f"s{i}") for i in range(100)]
    for session in sessions:
        session.step(20)
        while session.is_training:
            session.train_one_epoch()
        session.play()
    extent = get_settings().grid_extent

    def per_call(step: Any) -> float:
        """Median over 5 rounds of the CPU microseconds of one step, cycling the sessions."""
        results = []
        for _ in range(5):
            began = time.thread_time()
            for i in range(rounds):
                step(sessions[i % len(sessions)])
            results.append((time.thread_time() - began) / rounds * 1e6)
        return statistics.median(results)

    epoch = per_call(lambda s: s.train_one_epoch())
    grids = per_call(lambda s: frame_builder._grids(s, extent))
    build = per_call(lambda s: frame_builder.build_part(s, s.epoch - 1))
    parts = {s.id: frame_builder.build_part(s, s.epoch - 1) for s in sessions}
    encode = per_call(lambda s: preencode(parts[s.id]))
    encoded = {key: preencode(part) for key, part in parts.items()}
    ids = [s.id for s in sessions]

    def batch(s: Any) -> bytes:  # the 8 frames of a batch, from this session on
        at = ids.index(s.id)
        chosen = [(key, encoded[key]) for key in (ids * 2)[at:at + 8]]
        return pickle.dumps(("frames", chosen), pickle.HIGHEST_PROTOCOL)

    pickled = per_call(batch) / 8
    batches = {s.id: batch(s) for s in sessions}

    def web_side(s: Any) -> None:
        for _, received in pickle.loads(batches[s.id])[1]:
            _, merged = split_rows(merge_parts(None, received), 160)
            frame_bytes(merged, 1)

    web_us = per_call(web_side) / 8
    frame = build + encode + pickled
    print(f"== cost split (CPU us on one thread, default net, 100 sessions cycled): epoch "
          f"{epoch:.0f}; frame in the worker {frame:.0f} (grids {grids:.0f}, rest of the "
          f"header {build - grids:.0f}, encoding the state {encode:.0f}, pickling it in a "
          f"batch of 8 {pickled:.0f}); web process before its socket write {web_us:.0f} "
          "(unpickling, merging, the client's message)")
    for fps in (30.0, 20.0, 10.0):
        cores = 100 * (60 * epoch + fps * (frame + web_us)) / 1e6
        print(f"   100 sessions at 60 epochs/s and {fps:g} frames/s need {cores:.2f} cores "
              f"(training {100 * 60 * epoch / 1e6:.2f}) plus the web process's socket writes "
              "and the clients")


def worker_capacity(sessions: int, seconds: float) -> None:
    """One worker's loop in this process, frames discarded: rates per CPU-second it got.

    Separates the design's cost from the machine's load: on a shared machine the wall-clock
    rates above depend on how much CPU the server got; these are per CPU-second of one worker.
    """
    sys.path.insert(0, str(ROOT))
    from app.sessions.config import SessionConfig
    from app.sessions.session import TrainingSession
    from app.sessions.worker import Runner, Worker

    class Sink:
        """Stands in for the pipe: counts frames and reports each taken at once (no calls)."""

        def __init__(self) -> None:
            self.frames = 0
            self.inbox: list[tuple[Any, ...]] = []

        def send(self, message: tuple[Any, ...]) -> None:
            if message[0] == "frames":
                self.frames += len(message[1])
                self.inbox.append(("taken", [session_id for session_id, _ in message[1]]))

        def poll(self, timeout: float) -> bool:
            return bool(self.inbox)

        def recv(self) -> tuple[Any, ...]:
            return self.inbox.pop(0)

    sink = Sink()
    worker = Worker(sink)  # type: ignore[arg-type]
    for i in range(sessions):
        session = TrainingSession(SessionConfig(), f"s{i}")
        session.play()
        worker.runners[session.id] = Runner(session, subscribers=1)
    began, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - began < seconds:
        worker._serve_calls(0.0)
        worker._train_round(worker._ready())
        worker._emit_idle_frames()
        worker._flush_frames()
    cpu = time.process_time() - cpu
    epochs = sum(r.session.epoch for r in worker.runners.values())
    print(f"== worker capacity: {sessions} sessions in one worker, {cpu:.1f} CPU-s used of "
          f"{time.perf_counter() - began:.1f} s: per session per CPU-second "
          f"{epochs / sessions / cpu:.0f} epochs and {sink.frames / sessions / cpu:.1f} frames")


def main() -> int:
    """Start a server, run (a) and (b), or (c) alone, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None, help="default: the CPU count")
    parser.add_argument("--capacity", type=int, default=0, metavar="N",
                        help="only measure one worker's loop with N sessions, in-process")
    parser.add_argument("--paced", type=int, default=0, metavar="N",
                        help="only (c): N sessions at --speed, each watched by one client")
    parser.add_argument("--split", type=int, default=0, metavar="ROUNDS",
                        help="only print the CPU cost of each step of a paced session")
    parser.add_argument("--speed", type=float, default=60.0,
                        help="the pace of (c) in epochs/s (default 60, the page's default)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    if args.split:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        cost_split(args.split)
        return 0
    if args.capacity:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        worker_capacity(args.capacity, args.seconds)
        return 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(port, args.workers)
    try:
        wait_ready(base)
        print(f"workers: {httpx.get(f'{base}/health').json()['workers']}")
        if args.paced:
            tallies, latencies, window, cores = asyncio.run(
                run(base, args.paced, args.seconds, args.warmup, server.pid, args.speed)
            )
            report_paced(tallies, latencies, window, cores, args.speed)
        scenarios = [("(a) one session", 1), ("(b) concurrent", args.sessions)]
        for name, count in scenarios if not args.paced else []:
            tallies, latencies, window, cores = asyncio.run(
                run(base, count, args.seconds, args.warmup, server.pid)
            )
            report(name, tallies, latencies, window, cores)
    finally:
        server.terminate()
        server.wait(30)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
