"""A class of learners training at once, with the teacher's dashboard open (issue 10).

    .venv/bin/python bench/classroom.py [--learners 60] [--speed 60] [--seconds 15] [--warmup 5]
    .venv/bin/python bench/classroom.py --split 200   (CPU cost of a tile, in-process)

A real server in its own process (as scripts/run.sh serves it; 2 worker processes on this
2-core machine, a temporary data directory, so checkpointing is on as in production). A teacher
creates a class; `--learners` default sessions (circle, 2-4-2-1 tanh, 100x100 output grid) at the
page's default pace (`speed` 60 epochs/s) join it, each from its own owner token; each is
watched by its own websocket client as the page does (auth first, then play; every full frame
counted). Then two windows, one after the other on the same sessions:
  1. without a dashboard;
  2. with the teacher's dashboard open (`WS /ws/classes/{code}`, the teacher token first),
     counting the tiles it gets per learner.
Target: every learner's frames/s >= 10 with the dashboard open. Printed per window: frames/s
and epochs/s per learner (min / p10 / median), the workers' CPU per frame received (what a frame
and its epochs cost, whatever the other programs took), tiles/s per learner (dashboard), bytes a
second the dashboard took, `GET /health` p50/p99, and the cores the server's processes, this
client and the other programs used (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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
sys.path.insert(0, str(ROOT))

from bench.stream import (  # noqa: E402
    Tally,
    free_port,
    tree_cpu_seconds,
    wait_ready,
    watch_paced,  # one learner's page: auth, play, then count full frames while counting
)

TARGET_FRAMES = 10.0  # issue 10: every learner's page >= 10 frames/s


@dataclass
class Dashboard:
    """What the teacher's dashboard received during the window."""

    messages: int = 0
    bytes: int = 0
    tiles: int = 0
    per_learner: dict[str, int] | None = None


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (/proc/stat, not idle)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def start_server(port: int, data_dir: str, learners: int) -> subprocess.Popen[bytes]:
    """uvicorn in its own process; one client address opens every session here (the bench),
    so the per-address limits are raised to the class's size (a school behind one NAT address
    needs the same: docs/protocol.md "Classroom")."""
    env = dict(
        os.environ, OPENBLAS_NUM_THREADS="1", NN_PLAYGROUND_MAX_SESSIONS="500",
        NN_PLAYGROUND_RATE_LIMIT_PER_SECOND="0", NN_PLAYGROUND_DATA_DIR=data_dir,
        NN_PLAYGROUND_MAX_SESSIONS_PER_ADDRESS=str(learners + 10),
        NN_PLAYGROUND_MAX_RUNNING_PER_ADDRESS=str(learners + 10),
    )
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
               "--port", str(port), "--ws-per-message-deflate", "false", "--log-level", "warning"]
    return subprocess.Popen(command, cwd=ROOT, env=env)


async def dashboard(url: str, token: str, seen: Dashboard, stop: asyncio.Event) -> None:
    """The teacher's dashboard: auth, then count the tiles per learner until stopped."""
    seen.per_learner = {}
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(), 1.0)
            except TimeoutError:
                continue
            seen.messages += 1
            seen.bytes += len(message)
            body = json.loads(message)
            if body["type"] == "error":
                raise RuntimeError(body["detail"])
            if body["type"] == "tiles":
                for tile in body["tiles"]:
                    seen.tiles += 1
                    seen.per_learner[tile["session"]] = seen.per_learner.get(tile["session"], 0) + 1


async def poll_health(base: str, latencies: list[float], stop: asyncio.Event) -> None:
    """GET /health every 20 ms, recording each latency."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while not stop.is_set():
            began = time.perf_counter()
            await http.get("/health")
            latencies.append(time.perf_counter() - began)
            await asyncio.sleep(0.02)


async def window(
    base: str, server: int, pages: list[tuple[str, str]], teacher: tuple[str, str] | None,
    seconds: float, warmup: float,
) -> dict[str, Any]:
    """Watch every learner (and the dashboard, if `teacher`); measure `seconds` after `warmup`."""
    ws_base = base.replace("http", "ws", 1)
    tallies = [Tally() for _ in pages]
    counting, stop = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(watch_paced(f"{ws_base}/ws/sessions/{sid}", token, t,
                                             counting, stop))
             for (sid, token), t in zip(pages, tallies, strict=True)]
    seen = Dashboard()
    await asyncio.sleep(warmup)
    if teacher is not None:
        code, token = teacher
        tasks.append(asyncio.create_task(dashboard(f"{ws_base}/ws/classes/{code}", token, seen,
                                                   stop)))
        await asyncio.sleep(1.0)  # its first tiles (all learners at once) before counting
        seen.tiles, seen.messages, seen.bytes, seen.per_learner = 0, 0, 0, {}
    latencies: list[float] = []
    counting.set()
    health = asyncio.create_task(poll_health(base, latencies, stop))
    began, (web0, workers0) = time.perf_counter(), tree_cpu_seconds(server)
    busy0, own0 = machine_busy_seconds(), time.process_time()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - began
    web1, workers1 = tree_cpu_seconds(server)
    busy1, own1 = machine_busy_seconds(), time.process_time()
    stop.set()
    await asyncio.gather(*tasks, health)
    frames = [t.frames / elapsed for t in tallies]
    epochs = [(t.last_epoch - (t.first_epoch or 0)) / max(t.last_at - t.first_at, 1e-9)
              for t in tallies]
    ordered = sorted(latencies) or [0.0]
    tiles = [(seen.per_learner or {}).get(sid, 0) / elapsed for sid, _ in pages]
    return {
        "elapsed": elapsed, "frames": frames, "epochs": epochs, "tiles": tiles,
        "dashboard_bytes": seen.bytes / elapsed, "dashboard_messages": seen.messages / elapsed,
        "p50": ordered[len(ordered) // 2], "p99": ordered[min(len(ordered) - 1,
                                                             int(len(ordered) * 0.99))],
        "cores": ((web1 - web0) / elapsed, (workers1 - workers0) / elapsed),
        "client": (own1 - own0) / elapsed,
        # Everything else the machine ran meanwhile (other people's tests, ...).
        "others": ((busy1 - busy0) - (web1 - web0) - (workers1 - workers0) - (own1 - own0))
        / elapsed,
    }


def p10(values: list[float]) -> float:
    """The 10th percentile learner (statistics' exclusive method; the value itself for one)."""
    return statistics.quantiles(values, n=10)[0] if len(values) > 1 else values[0]


def report(name: str, result: dict[str, Any], speed: float, teacher: bool) -> None:
    """Print one window's figures."""
    frames, epochs, tiles = result["frames"], result["epochs"], result["tiles"]
    web, workers = result["cores"]
    print(f"== {name}: {len(frames)} learners at speed {speed:g}, {result['elapsed']:.1f} s; "
          f"the server used {web + workers:.2f} cores (web {web:.2f}, workers {workers:.2f}); "
          f"this client {result['client']:.2f}, other programs {result['others']:.2f}")
    print(f"frames/s per learner page: min {min(frames):.1f}  p10 {p10(frames):.1f}  median "
          f"{statistics.median(frames):.1f}  (target >= {TARGET_FRAMES:g}: "
          f"{min(frames) / TARGET_FRAMES:.2f}x; {sum(f < TARGET_FRAMES for f in frames)} below)")
    print(f"epochs/s per learner: min {min(epochs):.1f}  p10 {p10(epochs):.1f}  median "
          f"{statistics.median(epochs):.1f} "
          f"(pace {speed:g})")
    # What a frame costs whatever share of the machine the other programs left: the workers'
    # CPU per frame a page got (with the epochs trained between two frames).
    total_frames = sum(frames)
    print(f"workers' CPU per frame received: "
          f"{workers / total_frames * 1e3 if total_frames else 0.0:.2f} ms "
          f"({sum(epochs) / total_frames if total_frames else 0.0:.2f} epochs per frame)")
    if teacher:
        print(f"dashboard: tiles/s per learner min {min(tiles):.2f}  median "
              f"{statistics.median(tiles):.2f}; {result['dashboard_messages']:.1f} messages/s, "
              f"{result['dashboard_bytes'] / 1000:.1f} KB/s")
    print(f"/health: p50 {result['p50'] * 1000:.1f} ms, p99 {result['p99'] * 1000:.1f} ms")


async def run(base: str, server: int, learners: int, speed: float, seconds: float,
              warmup: float, grid: int | None = None) -> None:
    """Make the class and its learners, then the two windows."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (await http.post("/api/classes", json={"title": "Benchmark"})).json()
        teacher = (created["code"], created["teacher_token"])
        pages = []
        for i in range(learners):
            config: dict[str, Any] = {"speed": speed}
            if grid is not None:
                config["grid_resolution"] = grid
            session = (await http.post("/api/sessions", json=config)).json()
            token = session["owner_token"]
            joined = await http.post(
                f"/api/classes/{teacher[0]}/join",
                json={"session_id": session["id"], "name": f"Learner {i + 1}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            joined.raise_for_status()
            pages.append((session["id"], token))
    alone = await window(base, server, pages, None, seconds, warmup)
    report("1. learners only", alone, speed, False)
    watched = await window(base, server, pages, teacher, seconds, warmup)
    report("2. learners + the teacher's dashboard", watched, speed, True)


def cost_split(rounds: int, learners: int) -> None:
    """CPU microseconds of the tiles on one thread, in-process: a worker drawing a changed tile
    (float32 forward of 24x24 points, encoding), checking an unchanged one (its key), and the
    web process's share per tile (base64, the dashboard's JSON)."""
    from app.classroom.hub import ClassHub, ClassRoom
    from app.classroom.tiles import class_tiles, tile_key
    from app.engine import fast
    from app.sessions.config import SessionConfig
    from app.sessions.session import TrainingSession

    fast.warm_up()
    sessions = {f"s{i}": TrainingSession(SessionConfig(seed=i), f"s{i}") for i in range(30)}
    for session in sessions.values():
        session.step(20)
        while session.is_training:
            session.train_one_epoch()
    asked = {"size": 24, "extent": 6.0}

    def per_tile(known: dict[str, str | None]) -> float:
        results = []
        for _ in range(5):
            began = time.thread_time()
            for _ in range(rounds):
                class_tiles(sessions, {**asked, "sessions": known})
            results.append((time.thread_time() - began) / rounds / len(sessions) * 1e6)
        return statistics.median(results)

    drawn = per_tile(dict.fromkeys(sessions))
    checked = per_tile({sid: tile_key(s) for sid, s in sessions.items()})
    tiles = class_tiles(sessions, {**asked, "sessions": dict.fromkeys(sessions)})
    room = ClassRoom("BENCH1", "Bench", "", 0.0, None, learners={sid: sid for sid in sessions})
    began = time.thread_time()
    for _ in range(rounds):
        message = json.dumps({"type": "tiles", "tiles": [
            ClassHub._entry(room, {**tile}) for tile in tiles]})
    web = (time.thread_time() - began) / rounds / len(tiles) * 1e6
    fps = 4.0
    print(f"== tile cost (CPU us on one thread, default net): drawn {drawn:.0f}, unchanged "
          f"(key only) {checked:.0f}; web process per tile sent {web:.0f} "
          f"(a message of {len(tiles)} tiles is {len(message)} bytes)")
    print(f"   {learners} learners all changing, tile_fps {fps:g}: workers "
          f"{learners * fps * drawn / 1e6 * 100:.2f}% of a core, web process "
          f"{learners * fps * web / 1e6 * 100:.2f}% (one dashboard)")


def main() -> int:
    """Start a server, run both windows, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=60)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--grid", type=int, default=None,
                        help="the learners' output grid_resolution (default: the config's 100)")
    parser.add_argument("--split", type=int, default=0, metavar="ROUNDS",
                        help="only print the CPU cost of a tile (in-process)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    if args.split:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        cost_split(args.split, args.learners)
        return 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="nn-classroom-") as data_dir:
        server = start_server(port, data_dir, args.learners)
        try:
            wait_ready(base)
            print(f"workers: {httpx.get(f'{base}/health').json()['workers']}")
            asyncio.run(run(base, server.pid, args.learners, args.speed, args.seconds,
                            args.warmup, args.grid))
        finally:
            server.terminate()
            server.wait(30)
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
