"""The 50-session stream on the local backend and on the ray backend with two replicas (issue 12).

    .venv/bin/python bench/scale.py [--sessions 50] [--seconds 10] [--warmup 3] [--speed S]
                                    [--only local|ray] [--rounds N]

Side by side in one run, on this machine:
  local: one server process with its worker processes (one per core), as `scripts/run.sh`;
  ray:   a local Ray head (`ray start --head`, 2 CPUs), two web replicas with
         NN_PLAYGROUND_BACKEND=ray and the two shard actors; half the sessions are created
         through replica A and watched through replica B, the other half the other way round.
Each session plays flat out (or at `--speed`) with one websocket client, as bench/stream.py's
(b). Printed per backend: epochs/s and frames/s per session (min, median), /health p50/p99 on
each replica, the CPU of the server side (web processes, workers or shards, and Ray's own
processes) and of other programs in the window (figures count only with others <= 0.15 cores),
the server side's CPU by kind, epochs per training core-second (workers' or shards' CPU: the
comparison that holds whatever share the other programs took), and for ray the batches per
second on the replicas' shard connections (app/backends/shard_wire.py) and messages per batch.
Targets (issue 12): ray >= 80% of local's epochs/s and frames/s per session, /health p99 < 100 ms
on each replica. This machine's speed drifts within minutes (local alone: 38-54 epochs/s per
session in quiet runs minutes apart), so `--rounds N` alternates the two N times and prints the
median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ray_head import head_command, kill_marked, stop_group  # noqa: E402
from bench.stream import (  # noqa: E402
    Tally,
    free_port,
    poll_health,
    wait_ready,
    watch,
    watch_paced,
)

MARKER = "NNPG_SCALE_BENCH"  # in the environment of every process this bench starts
BIN = Path(sys.executable).parent


def cpu_by_marker(marker: str) -> float:
    """CPU seconds used so far by every process whose environment carries our marker."""
    return sum(cpu_by_kind(marker).values())


def kind_of(cmdline: bytes) -> str:
    """Which part of the server side a process is (by its command line)."""
    if cmdline.startswith(b"ray::Shard"):
        return "shards"
    if cmdline.startswith(b"ray::Directory"):
        return "directory"
    if b"nn-playground" in cmdline:
        return "web"
    if b"multiprocessing" in cmdline:
        return "workers"
    return "ray system"


def cpu_by_kind(marker: str) -> dict[str, float]:
    """CPU seconds used so far by our marked processes, by kind (kind_of)."""
    ticks = os.sysconf("SC_CLK_TCK")
    needle = f"{MARKER}={marker}".encode()
    totals: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            kind = kind_of((entry / "cmdline").read_bytes())
            totals[kind] = totals.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
    return totals


def training_threads(marker: str) -> dict[tuple[int, int], tuple[float, int]]:
    """(pid, tid) -> (CPU seconds so far, involuntary context switches) of every thread of
    our training processes (workers or shards)."""
    ticks = os.sysconf("SC_CLK_TCK")
    needle = f"{MARKER}={marker}".encode()
    threads: dict[tuple[int, int], tuple[float, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if kind_of((entry / "cmdline").read_bytes()) not in ("workers", "shards"):
                continue
            for task in (entry / "task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                    status = (task / "status").read_text()
                    switches = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
                    cpu = (int(fields[11]) + int(fields[12])) / ticks
                    threads[(int(entry.name), int(task.name))] = (cpu, switches)
    return threads


def thread_split(
    before: dict[tuple[int, int], tuple[float, int]],
    after: dict[tuple[int, int], tuple[float, int]],
    elapsed: float,
) -> dict[str, float]:
    """The training processes' CPU in the window: their busiest thread each (the Worker loop
    that trains) and all their other threads (a shard's checkpoint writer, wire threads and
    Ray's own; a worker process has none that work), in cores; and the training threads'
    involuntary context switches per second (preemptions by other programs)."""
    per_pid: dict[int, list[tuple[float, int]]] = {}
    for key, (cpu, switches) in after.items():
        old_cpu, old_switches = before.get(key, (0.0, 0))
        per_pid.setdefault(key[0], []).append((cpu - old_cpu, switches - old_switches))
    busiest = [max(threads) for threads in per_pid.values()]
    total = sum(cpu for threads in per_pid.values() for cpu, _ in threads)
    main = sum(cpu for cpu, _ in busiest)
    return {
        "training": main / elapsed,
        "rest": (total - main) / elapsed,
        "preempted": sum(n for _, n in busiest) / elapsed,
    }


def record_profiles(marker: str, seconds: float, into: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (not a dependency: `pip install py-spy` for --profile) records each web and
    training process for `seconds`, 100 samples a second of its threads that run (not those
    that wait), without pausing it, into `into`/<kind>-<pid>.txt (py-spy's raw format, one line
    a stack)."""
    into.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    needle = f"{MARKER}={marker}".encode()
    spies = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            kind = kind_of((entry / "cmdline").read_bytes())
            if kind not in ("workers", "shards", "web"):
                continue
            out = into / f"{kind}-{entry.name}.txt"
            spies.append(
                subprocess.Popen(
                    [spy, "record", "--pid", entry.name, "--duration", str(int(seconds)),
                     "--rate", "100", "--nonblocking", "--format", "raw", "--output", str(out)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return spies


def machine_cpu() -> float:
    """CPU seconds every program on the machine used so far (/proc/stat, not idle/iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    busy = sum(values) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """This client's CPU seconds."""
    usage = os.times()
    return usage.user + usage.system


def base_env(marker: str) -> dict[str, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    # A ~/.ray/auth_token (any local ray.init() leaves one) makes a head started without
    # RAY_AUTH_MODE require a token its replicas do not send (docs/deploy.md, step 2).
    env["RAY_AUTH_MODE"] = "disabled"
    env[MARKER] = marker
    env["NN_PLAYGROUND_DATA_DIR"] = str(Path(marker) / "data")
    for name in ("MAX_SESSIONS", "MAX_SESSIONS_PER_ADDRESS", "MAX_RUNNING_PER_ADDRESS"):
        env[f"NN_PLAYGROUND_{name}"] = "500"
    env["NN_PLAYGROUND_RATE_LIMIT_PER_SECOND"] = "0"  # one client address opens everything
    return env


def serve(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "nn-playground"), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def measure(
    bases: list[str],
    sessions: int,
    seconds: float,
    warmup: float,
    speed: float | None,
    marker: str,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Create the sessions round-robin over `bases`, watch each through the next base, and
    measure the window (`profile`: py-spy records every training process in it, there)."""
    config = {} if speed is None else {"speed": speed}
    created: list[tuple[int, dict[str, Any]]] = []
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(sessions):
            where = i % len(bases)
            reply = await http.post(bases[where] + "/api/sessions", json=config)
            reply.raise_for_status()
            created.append((where, reply.json()))
    tallies = [Tally() for _ in created]
    start, done = asyncio.Event(), asyncio.Event()
    watcher = watch if speed is None else watch_paced
    tasks = []
    for (where, session), tally in zip(created, tallies, strict=True):
        watched = bases[(where + 1) % len(bases)].replace("http", "ws", 1)  # the other replica
        tasks.append(
            asyncio.create_task(
                watcher(watched + session["ws_url"], session["owner_token"], tally, start, done)
            )
        )
    latencies: list[list[float]] = [[] for _ in bases]
    await asyncio.sleep(warmup)
    start.set()
    health = [
        asyncio.create_task(poll_health(b, lat, done))
        for b, lat in zip(bases, latencies, strict=True)
    ]
    began = time.perf_counter()
    kinds, machine, client = cpu_by_kind(marker), machine_cpu(), own_cpu()
    threads = training_threads(marker)
    spies = [] if profile is None else record_profiles(marker, seconds, profile)
    ours = sum(kinds.values())
    await asyncio.sleep(seconds)
    done.set()
    elapsed = time.perf_counter() - began
    kinds_after = cpu_by_kind(marker)
    split = thread_split(threads, training_threads(marker), elapsed)
    ours = sum(kinds_after.values()) - ours
    by_kind = {k: (v - kinds.get(k, 0.0)) / elapsed for k, v in kinds_after.items()}
    machine = machine_cpu() - machine
    client = own_cpu() - client
    await asyncio.gather(*tasks, *health)
    for spy in spies:
        spy.wait(30)
    async with httpx.AsyncClient(timeout=60) as http:
        for where, session in created:
            await http.delete(
                f"{bases[where]}/api/sessions/{session['id']}",
                headers={"Authorization": f"Bearer {session['owner_token']}"},
            )
    epochs = [(t.last_epoch - (t.first_epoch or 0)) / elapsed for t in tallies]
    frames = [t.frames / elapsed for t in tallies]
    p99s = []
    for lat in latencies:
        ordered = sorted(lat) or [0.0]
        p99s.append(
            (
                ordered[len(ordered) // 2] * 1000,
                ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
            )
        )
    return {
        "elapsed": elapsed,
        "epochs": epochs,
        "frames": frames,
        "health": p99s,
        "server_cores": ours / elapsed,
        "by_kind": by_kind,
        "threads": split,
        "client_cores": client / elapsed,
        "other_cores": max(0.0, (machine - ours - client) / elapsed),
        # Epoch rows are counted by the flat-out client only (the paced one reads headers).
        "gaps": None
        if speed is not None
        else sum(t.rows < t.last_epoch - (t.first_epoch or 0) for t in tallies),
    }


def print_result(name: str, result: dict[str, Any]) -> None:
    epochs, frames = result["epochs"], result["frames"]
    print(
        f"== {name}: {len(epochs)} sessions, {result['elapsed']:.1f} s window; server side "
        f"{result['server_cores']:.2f} cores, this client {result['client_cores']:.2f}, "
        f"other programs {result['other_cores']:.2f} (counts if <= 0.15)"
    )
    idle = ", ".join(f"{k} {v:.3f}" for k, v in sorted(result["idle"].items()))
    print(f"   idle (no sessions): {sum(result['idle'].values()):.3f} cores ({idle})")
    kinds = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["by_kind"].items()))
    print(f"   server side by kind (cores): {kinds}")
    print(
        f"   epochs per training core-second: {per_core(result):.0f}; per server-side "
        f"core-second: {per_server_core(result):.0f}"
    )
    split = result["threads"]
    print(
        f"   training processes' threads: the loops {split['training']:.2f} cores "
        f"({sum(result['epochs']) / max(split['training'], 1e-9):.0f} epochs per core-second), "
        f"the other threads {split['rest']:.3f} cores; the loops preempted "
        f"{split['preempted']:.0f} times/s"
    )
    print(
        f"   epochs/s per session: min {min(epochs):.0f}  median "
        f"{statistics.median(epochs):.0f}  total {sum(epochs):.0f}"
    )
    print(
        f"   frames/s per session: min {min(frames):.1f}  median "
        f"{statistics.median(frames):.1f}  total {sum(frames):.0f}; sessions missing "
        f"epoch rows: {'not counted (paced)' if result['gaps'] is None else result['gaps']}"
    )
    for i, (p50, p99) in enumerate(result["health"]):
        print(f"   /health on replica {i}: p50 {p50:.1f} ms, p99 {p99:.1f} ms")


def per_core(result: dict[str, Any]) -> float:
    """Epochs/s of all sessions per core of the training processes (workers or shards)."""
    training = result["by_kind"].get("workers", 0.0) + result["by_kind"].get("shards", 0.0)
    return sum(result["epochs"]) / max(training, 1e-9)


def per_server_core(result: dict[str, Any]) -> float:
    """Epochs/s of all sessions per core of everything the bench started: web processes,
    workers or shards and Ray's own processes (a local web process writes the checkpoints
    that a shard writes itself, so this is the like-for-like cost of an epoch)."""
    return sum(result["epochs"]) / max(result["server_cores"], 1e-9)


def idle_cores(marker: str, seconds: float) -> dict[str, float]:
    """Cores the started processes use with no session at all (Ray's own upkeep), by kind."""
    before = cpu_by_kind(marker)
    time.sleep(seconds)
    after = cpu_by_kind(marker)
    return {k: (v - before.get(k, 0.0)) / seconds for k, v in after.items()}


def run_local(args: argparse.Namespace) -> dict[str, Any]:
    marker = tempfile.mkdtemp(prefix="nnscale-local-")
    port = free_port()
    server = serve(port, base_env(marker), Path(marker) / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        time.sleep(args.settle)  # the worker processes warm up
        idle = idle_cores(marker, args.idle)
        result = asyncio.run(
            measure(
                [base], args.sessions, args.seconds, args.warmup, args.speed, marker,
                args.profile,
            )
        )
        result["idle"] = idle
        return result
    finally:
        stop_group(server)
        kill_marked(MARKER, marker)
        shutil.rmtree(marker, ignore_errors=True)


def run_ray(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    marker = tempfile.mkdtemp(prefix="nnscale-ray-")
    env = base_env(marker)
    port = free_port()
    head = subprocess.Popen(
        head_command(port, Path(marker) / "ray", free_port()),
        env=env,
        stdout=(Path(marker) / "head.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    env.update(
        {
            "RAY_ADDRESS": f"127.0.0.1:{port}",
            "NN_PLAYGROUND_BACKEND": "ray",
            "NN_PLAYGROUND_RAY_SHARDS": str(args.shards),
        }
    )
    replicas, bases = [], []
    try:
        for i in range(2):
            replica_port = free_port()
            replicas.append(serve(replica_port, env, Path(marker) / f"replica-{i}.log"))
            bases.append(f"http://127.0.0.1:{replica_port}")
        for i, base in enumerate(bases):
            try:
                wait_ready(base)
            except RuntimeError:
                for log in (Path(marker) / f"replica-{i}.log", Path(marker) / "head.log"):
                    print(f"-- the last lines of {log.name}:", file=sys.stderr)
                    lines = log.read_text(errors="replace").splitlines()
                    print("\n".join(lines[-15:]), file=sys.stderr)
                raise
        time.sleep(args.settle)  # the shards warm up
        idle = idle_cores(marker, args.idle)
        calls_before = shard_calls(env["RAY_ADDRESS"], args.shards)
        began = time.perf_counter()
        result = asyncio.run(
            measure(
                bases, args.sessions, args.seconds, args.warmup, args.speed, marker, args.profile
            )
        )
        span = time.perf_counter() - began
        calls_after = shard_calls(env["RAY_ADDRESS"], args.shards)
        calls = {k: (calls_after[k] - calls_before[k]) / span for k in calls_before}
        result["idle"] = idle
        return result, calls
    finally:
        for replica in replicas:
            stop_group(replica)
        stop_group(head, signal.SIGKILL)
        kill_marked(MARKER, marker)
        shutil.rmtree(marker, ignore_errors=True)


def shard_calls(address: str, shards: int) -> dict[str, float]:
    """Batches in and out of the shards' connections and messages sent so far, summed over the
    shards (a driver process)."""
    script = (
        "import json, ray\n"
        f"ray.init(address={address!r}, namespace='nn_playground', log_to_driver=False)\n"
        f"s = [ray.get(ray.get_actor(f'nnpg-shard-{{i}}').stats.remote())\n"
        f"     for i in range({shards})]\n"
        "keys = ('batches_in', 'batches_out', 'messages_out')\n"
        "print(json.dumps({k: sum(x[k] for x in s) for k in keys}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=dict(os.environ, RAY_AUTH_MODE="disabled"),
    ).stdout
    import json

    counts: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=None, help="default: flat out")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds of the idle CPU measurement before the sessions",
    )
    parser.add_argument(
        "--only",
        choices=("local", "ray"),
        default=None,
        help="run one backend (a profile, a quick look); no comparison",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="a directory: py-spy records every web, worker or shard process in the window there",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="local then ray, this many times; the median of the rounds' ratios is the figure "
        "(this machine's speed drifts within minutes: one round's ratio is noisy)",
    )
    args = parser.parse_args()
    if args.only is not None:
        run_one(args, args.only)
        return 0
    rounds = [compare(args, index) for index in range(1, max(1, args.rounds) + 1)]
    if len(rounds) > 1:
        epochs, frames, worst = (sorted(r[i] for r in rounds) for i in range(3))
        print(
            f"== {len(rounds)} rounds: ray vs local epochs/s {' '.join(f'{x:.2f}' for x in epochs)}"
            f" (median {statistics.median(epochs):.2f}x), frames/s "
            f"{' '.join(f'{x:.2f}' for x in frames)} (median {statistics.median(frames):.2f}x); "
            f"worst replica /health p99 {worst[-1]:.1f} ms (targets >= 0.80, < 100 ms)"
        )
    return 0


def run_one(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    """One backend's measurement, printed; its result."""
    if backend == "local":
        local = run_local(args)
        print_result("local backend (one server, a worker process per core)", local)
        return local
    remote, calls = run_ray(args)
    print_result(f"ray backend ({args.shards} shard actors, 2 replicas, watched across)", remote)
    print(
        f"   wire batches/s: to the shards {calls['batches_in']:.0f}, from them "
        f"{calls['batches_out']:.0f}; messages per batch from them "
        f"{calls['messages_out'] / max(calls['batches_out'], 1):.2f}"
    )
    return remote


def compare(args: argparse.Namespace, index: int) -> tuple[float, float, float]:
    """One round, local then ray: (epochs/s ratio, frames/s ratio, worst replica p99)."""
    if args.rounds > 1:
        print(f"-- round {index} of {args.rounds}")
    local, remote = run_one(args, "local"), run_one(args, "ray")
    ratio_e = statistics.median(remote["epochs"]) / max(statistics.median(local["epochs"]), 1e-9)
    ratio_f = statistics.median(remote["frames"]) / max(statistics.median(local["frames"]), 1e-9)
    worst = max(p99 for _, p99 in remote["health"])
    print(
        f"   per training core: ray {per_core(remote) / max(per_core(local), 1e-9):.2f}x local; "
        f"per server-side core: {per_server_core(remote) / max(per_server_core(local), 1e-9):.2f}x"
    )
    print(
        f"== ray vs local (median session): epochs/s {ratio_e:.2f}x, frames/s {ratio_f:.2f}x "
        f"(target >= 0.80); worst replica /health p99 {worst:.1f} ms (target < 100)"
    )
    return ratio_e, ratio_f, worst


if __name__ == "__main__":
    raise SystemExit(main())
