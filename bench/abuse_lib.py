"""Attacks on a real server, as code (issue 9): the server, a /health prober, a canary, attacks.

Used by `bench/abuse.py` (figures) and `tests/abuse/` (assertions). Everything runs on loopback:

- `Server`: `nn-playground --port P` (the console script's `app.main.run`, so uvicorn gets the
  same flags as in production) as a subprocess on a free port, settings as NN_PLAYGROUND_* env
  variables, its log in a file; waits for /health; stop terminates and reaps it (and its
  workers, which die with their parent's pipe).
- `Monitor`: in a process of its own (so an attack's client-side CPU and GIL never count as
  server latency), GET /health every ~20 ms and a canary session (created, played at the page's
  pace, watched over the websocket, its full frames timed). Samples carry CLOCK_MONOTONIC times,
  which every process on the machine shares, so any window [t0, t1] of the caller can be cut out.
- Attacks: coroutines from another client address (127.0.0.2, so per-address limits and rate
  limits fall on the attacker and not on the canary, 127.0.0.1), each bounded in count and time
  and returning what the server answered.

The canary and the attacks work before and after issue 9: they present an owner token when a
create gave one (`Authorization: Bearer`, and the websocket `auth` message first), and follow a
`202 {"job": ...}` to its end when a route answers with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
VICTIM = "127.0.0.1"  # the canary's and the prober's address
ATTACKER = "127.0.0.2"  # loopback too (127/8): another client address for the attacks
_attacker = [ATTACKER]  # the address attacks come from now (see `attacking_from`)


@contextlib.contextmanager
def attacking_from(address: str) -> Iterator[None]:
    """Attacks started inside come from `address` (tests on one shared server give each attack
    its own address, so one attack's rate-limit window never falls on the next)."""
    _attacker.append(address)
    try:
        yield
    finally:
        _attacker.pop()


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    """All descendants of a process (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        todo += kids
    return found


class Server:
    """A real `nn-playground` process on a free loopback port (a context manager)."""

    def __init__(
        self,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        root: Path = ROOT,
        startup_seconds: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_base = f"ws://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = env or {}
        self.root = root
        self.startup_seconds = startup_seconds
        self.log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            prefix="nn-abuse-", suffix=".log", delete=False
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.data_dir = tempfile.mkdtemp(prefix="nn-bench-data-")

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start the process and wait until /health answers 200."""
        argv = ["--port", str(self.port)]
        if self.workers is not None:
            argv += ["--workers", str(self.workers)]
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(self.root))
        # Its own database unless told (issue 10): never ./data, never a previous run's sessions.
        env["NN_PLAYGROUND_DATA_DIR"] = self.data_dir
        env.update(self.env)
        # -c puts the working directory first on sys.path: the server is `root`'s code.
        command = [sys.executable, "-c", f"from app.main import run; run({argv!r})"]
        self.process = subprocess.Popen(
            command, cwd=self.root, env=env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer /health in {self.startup_seconds} s")

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful stop), SIGKILL after 8 s; reap it and its children."""
        if self.process is not None and self.process.poll() is None:
            kids = children(self.process.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            for pid in kids:  # workers normally exit with the web process; never leave one
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        self.log_file.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        """Everything the server printed so far."""
        self.log_file.flush()
        return Path(self.log_file.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss(self) -> int:
        """Resident memory of the web process."""
        return rss_bytes(self.pid)

    def tree_rss(self) -> int:
        """Resident memory of the web process and its workers."""
        return self.rss() + sum(rss_bytes(child) for child in children(self.pid))

    def worker_pids(self) -> list[int]:
        """The session worker processes (multiprocessing spawn children, not its tracker)."""
        found = []
        for pid in children(self.pid):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                found.append(pid)
        return found


# ---------------------------------------------------------------- clients


def http_client(
    base: str, source: str | None = None, timeout: float = 60.0
) -> httpx.AsyncClient:
    """An async HTTP client whose connections come from `source` (a loopback address; by
    default the attacker's)."""
    source = source or _attacker[-1]
    transport = httpx.AsyncHTTPTransport(local_address=source, retries=0)
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    return httpx.AsyncClient(base_url=base, transport=transport, timeout=timeout, limits=limits)


def bearer(token: str | None) -> dict[str, str]:
    """The Authorization header for an owner token (none before issue 9)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


async def ws_connect(url: str, source: str | None = None, **kwargs: Any) -> ClientConnection:
    """A websocket client from `source`, no compression, no size cap on what it receives."""
    source = source or _attacker[-1]
    return await connect(
        url, compression=None, max_size=None, local_addr=(source, 0), open_timeout=10, **kwargs
    )


async def follow_job(
    http: httpx.AsyncClient, response: httpx.Response, token: str | None, seconds: float,
    every: float = 0.5,
) -> tuple[int, dict[str, Any]]:
    """The final (status, body) of a route: a 202 job is polled (`every` s) until it ends or
    `seconds` pass.

    A job still running at the deadline is cancelled (DELETE) so nothing outlives the attack.
    """
    if response.status_code != 202:
        return response.status_code, _json(response)
    job = _json(response).get("job", {})
    location = response.headers.get("location") or f"/api/jobs/{job.get('id')}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        polled = await http.get(location, headers=bearer(token))
        if polled.status_code == 429:  # the rate limiter: wait as told (within the deadline)
            await asyncio.sleep(min(float(polled.headers.get("retry-after", 1)), 1.0))
            continue
        job = _json(polled)
        if polled.status_code != 200 or job.get("state") != "running":
            break
    else:
        await http.delete(location, headers=bearer(token))
        return 202, {"job": job, "cancelled_at_deadline": True}
    return 202, {"job": job}


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"text": response.text[:200]}
    return body if isinstance(body, dict) else {"list": body}


async def create_session(
    http: httpx.AsyncClient, config: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """POST /api/sessions: (status, body); the body holds `owner_token` after issue 9."""
    response = await http.post("/api/sessions", json=config or {}, headers=bearer(token))
    return response.status_code, _json(response)


async def command(
    http: httpx.AsyncClient, session_id: str, body: dict[str, Any], token: str | None
) -> httpx.Response:
    """POST a command to a session with its owner's token."""
    return await http.post(f"/api/sessions/{session_id}/commands", json=body,
                           headers=bearer(token))


async def long_session(
    http: httpx.AsyncClient, epochs: int, config: dict[str, Any] | None = None
) -> tuple[str, str | None]:
    """A session `epochs` epochs long in ~a second: the export of a fresh one, its history
    filled to `epochs` rows, imported (weights of epoch 0, so a replay does all the work and
    finds a mismatch; the hello carries the whole history). Returns (id, owner token)."""
    status, fresh = await create_session(http, config)
    assert status == 201, (status, fresh)
    token = fresh.get("owner_token")
    export = (await http.get(f"/api/sessions/{fresh['id']}/export", headers=bearer(token))).json()
    await http.delete(f"/api/sessions/{fresh['id']}", headers=bearer(token))
    rng = random.Random(0)
    export["history"] = {
        name: [round(0.1 + 0.4 * rng.random(), 4) for _ in range(epochs)]
        for name in export["history"]
    }
    export["epoch"] = epochs
    # Imported as a new owner (no Authorization): its answer carries its own token.
    response = await http.post("/api/sessions/import", content=json.dumps(export),
                               headers={"content-type": "application/json"})
    token = _json(response).get("owner_token") if response.status_code == 202 else None
    status, body = await follow_job(http, response, token, 60.0)
    if status == 202:  # a job's result is the usual answer
        result = await http.get(f"/api/jobs/{body['job']['id']}/result", headers=bearer(token))
        body = _json(result)
        status = result.status_code
    assert status in (200, 201), (status, body)
    return body["id"], body.get("owner_token", token)


# ---------------------------------------------------------------- the monitor process


@dataclass
class Samples:
    """What the monitor saw: /health (start time, seconds, status; status 0 = still waiting,
    -1 = failed) and the canary's full frames (arrival times), plus anything odd."""

    health: list[tuple[float, float, int]] = field(default_factory=list)
    frames: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Figures:
    """/health latency (ms) and the canary's frames in one window."""

    seconds: float
    requests: int
    p50: float
    p99: float
    max: float
    failed: int
    frames_per_second: float
    longest_gap: float  # seconds without a canary frame (window edges count)

    def line(self) -> str:
        return (f"/health p50 {self.p50:6.1f} p99 {self.p99:7.1f} max {self.max:7.1f} ms"
                f"{f' ({self.failed} failed)' if self.failed else ''}; canary "
                f"{self.frames_per_second:5.1f} frames/s, longest gap {self.longest_gap:5.2f} s")


def figures(samples: Samples, t0: float, t1: float) -> Figures:
    """The figures of the window [t0, t1] (CLOCK_MONOTONIC seconds)."""
    latencies = sorted(s * 1000 for began, s, _ in samples.health if t0 <= began <= t1)
    failed = sum(status not in (200, 0) for began, _, status in samples.health
                 if t0 <= began <= t1)
    frames = [t for t in samples.frames if t0 <= t <= t1]
    edges = [t0, *frames, t1]
    ordered = latencies or [0.0]
    return Figures(
        seconds=t1 - t0,
        requests=len(latencies),
        p50=statistics.median(ordered),
        p99=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        max=ordered[-1],
        failed=failed,
        frames_per_second=len(frames) / max(t1 - t0, 1e-9),
        longest_gap=max(b - a for a, b in itertools.pairwise(edges)),
    )


class Monitor:
    """The prober and the canary in their own process; `samples()` at any time."""

    def __init__(self, server: Server, canary: bool = True, warmup: float = 1.5) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(
            target=monitor_main, args=(child, server.base, canary), daemon=True
        )
        self.warmup = warmup
        self.canary: dict[str, Any] = {}

    def __enter__(self) -> Monitor:
        self.process.start()
        if not self.connection.poll(60):
            raise RuntimeError("the monitor did not start")
        self.canary = self.connection.recv()  # the canary session (id, owner token) or {}
        if "error" in self.canary:
            raise RuntimeError(f"canary: {self.canary['error']}")
        time.sleep(self.warmup)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.connection.send("stop")
        self.process.join(15)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)

    def samples(self) -> Samples:
        """Everything recorded so far (an in-flight /health counts with its wait so far)."""
        self.connection.send("dump")
        health, frames, notes = self.connection.recv()
        return Samples(health, frames, notes)

    def figures(self, t0: float, t1: float) -> Figures:
        return figures(self.samples(), t0, t1)


def monitor_main(connection: Connection, base: str, canary: bool) -> None:
    """The monitor process: prober + canary until told to stop."""
    asyncio.run(_monitor(connection, base, canary))


async def _monitor(connection: Connection, base: str, canary: bool) -> None:
    samples = Samples()
    in_flight: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    info: dict[str, Any] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        if canary:
            info = await _canary_session(base)
            tasks.append(asyncio.create_task(_watch(base, info, samples, stop)))
    except Exception as error:  # reported to the parent, which raises
        connection.send({"error": repr(error)})
        return
    connection.send(info)
    tasks.append(asyncio.create_task(_probe(base, samples, in_flight, stop)))
    while True:
        message = await loop.run_in_executor(None, connection.recv)
        now = time.monotonic()
        pending = [(began, now - began, 0) for began in in_flight]
        connection.send((samples.health + pending, list(samples.frames), list(samples.notes)))
        if message == "stop":
            break
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _probe(base: str, samples: Samples, in_flight: list[float], stop: asyncio.Event) -> None:
    """GET /health every 20 ms (one at a time, as a load balancer would)."""
    async with http_client(base, VICTIM, timeout=60) as http:
        while not stop.is_set():
            began = time.monotonic()
            in_flight.append(began)
            try:
                status = (await http.get("/health")).status_code
            except httpx.HTTPError:
                status = -1
            in_flight.remove(began)
            samples.health.append((began, time.monotonic() - began, status))
            await asyncio.sleep(0.02)


async def _canary_session(base: str) -> dict[str, Any]:
    """The canary: a default session at the page's pace (speed 60), created by the victim."""
    async with http_client(base, VICTIM) as http:
        status, body = await create_session(http, {"speed": 60})
        if status != 201:
            raise RuntimeError(f"canary create: {status} {body}")
        return {"id": body["id"], "token": body.get("owner_token"), "ws_url": body["ws_url"]}


async def _watch(base: str, info: dict[str, Any], samples: Samples, stop: asyncio.Event) -> None:
    """Watch the canary like the page: auth (when we have a token), play, time full frames."""
    url = base.replace("http", "ws", 1) + info["ws_url"]
    while not stop.is_set():
        try:
            async with await ws_connect(url, VICTIM) as ws:
                if info["token"]:
                    await ws.send(json.dumps({"type": "auth", "token": info["token"]}))
                await ws.send(json.dumps({"type": "play", "id": "canary"}))
                async for message in ws:
                    if isinstance(message, str):
                        kind = json.loads(message).get("type")
                        if kind in ("error", "lost", "removed"):
                            samples.notes.append(message[:300])
                        continue
                    if b'"rows_only":true' not in message[:2000]:
                        samples.frames.append(time.monotonic())
        except (OSError, ConnectionClosed, InvalidStatus, TimeoutError) as error:
            samples.notes.append(f"canary socket: {error!r}")
            await asyncio.sleep(0.5)  # reconnect, as the page does


# ---------------------------------------------------------------- the attacks


@dataclass
class Outcome:
    """What an attack got back: a one-line summary and the raw facts for tests."""

    summary: str
    facts: dict[str, Any] = field(default_factory=dict)
    window: tuple[float, float] | None = None  # the attack proper, after its set-up (monotonic)


def statuses(codes: list[int]) -> str:
    """'3x201 2x429'."""
    counted: dict[int, int] = {}
    for code in codes:
        counted[code] = counted.get(code, 0) + 1
    return " ".join(f"{n}x{code}" for code, n in sorted(counted.items()))


def big_points_body(rows: int = 300_000, seed: int = 0) -> bytes:
    """`{"points": [[x1, x2, label] * rows]}`: 300,000 rows are ~3.9 MB, under the old 4 MB cap."""
    rng = random.Random(seed)
    points = ",".join(
        f"[{rng.randint(-59, 59) / 10},{rng.randint(-59, 59) / 10},{rng.randint(0, 1)}]"
        for _ in range(rows)
    )
    return ('{"points":[' + points + "]}").encode()


async def attack_big_bodies(
    base: str, count: int = 1, body: bytes | None = None, deadline: float = 20.0
) -> Outcome:
    """`count` big create bodies at once (each on its own connection); -1 = no answer by the
    deadline."""
    body = body or big_points_body()
    async with http_client(base, timeout=deadline) as http:
        began = time.monotonic()

        async def one() -> tuple[int, int, float]:
            try:
                response = await http.post("/api/sessions", content=body,
                                           headers={"content-type": "application/json"})
            except httpx.HTTPError:
                return -1, 0, time.monotonic() - began
            return response.status_code, len(response.content), time.monotonic() - began

        results = await asyncio.gather(*(one() for _ in range(count)))
    codes = [code for code, _, _ in results]
    sizes = [size for _, size, _ in results]
    slowest = max(t for _, _, t in results)
    return Outcome(
        f"{count} x {len(body) / 1e6:.1f} MB: {statuses(codes)}, answers of {max(sizes):,} bytes, "
        f"last in {slowest:.2f} s",
        {"codes": codes, "answer_bytes": sizes, "seconds": slowest},
    )


async def attack_long_replay(base: str, epochs: int = 30_000, deadline: float = 20.0) -> Outcome:
    """POST timetravel on an `epochs`-long session (set up first, outside the window)."""
    async with http_client(base, timeout=deadline) as http:
        session_id, token = await long_session(http, epochs)
        return await _replay(http, session_id, token, epochs, deadline)


async def _replay(
    http: httpx.AsyncClient, session_id: str, token: str | None, epochs: int, deadline: float
) -> Outcome:
    began = time.monotonic()
    try:
        response = await http.post(f"/api/sessions/{session_id}/timetravel",
                                   headers=bearer(token))
    except httpx.HTTPError as error:
        return Outcome(f"replay of {epochs:,} epochs: no answer ({type(error).__name__}) in "
                       f"{time.monotonic() - began:.0f} s", {"code": None, "first_answer": None},
                       (began, time.monotonic()))
    first_answer = time.monotonic() - began
    code, body = await follow_job(http, response, token, deadline)
    state = body.get("job", {}).get("state") if code == 202 else None
    window = (began, time.monotonic())
    return Outcome(
        f"replay of {epochs:,} epochs: {response.status_code} in {first_answer:.2f} s"
        + (f", job {state} at {time.monotonic() - began:.1f} s" if state else ""),
        {"code": response.status_code, "first_answer": first_answer, "job": body.get("job")},
        window,
    )


RACE_CONFIG: dict[str, Any] = {"dataset": "spiral", "n_samples": 1000, "batch_size": 5,
                               "layers": [{"units": 8}, {"units": 8}]}
RACERS = [{"optimizer": name} for name in ("sgd", "momentum", "adam", "rmsprop")]


async def attack_race_steps(
    base: str, races: int = 42, epochs: int = 20, deadline: float = 20.0,
    server: Server | None = None, sources: list[str] | None = None,
) -> Outcome:
    """`races` races (one per fresh owner; from `sources` in turn, by default the attacker),
    then a step of each, all at once; with `server`, the web process's RSS before, at its peak
    and after the races are deleted."""
    rss = [server.rss()] if server else []

    async def sample_rss() -> None:
        while server is not None:
            rss.append(server.rss())
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    addresses = sources or [_attacker[-1]]
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(http_client(base, a, timeout=deadline + 10))
                   for a in addresses]
        created: list[tuple[str, str | None, httpx.AsyncClient]] = []
        create_codes = []

        async def create(http: httpx.AsyncClient) -> tuple[httpx.AsyncClient, httpx.Response]:
            return http, await http.post("/api/races",
                                         json={"config": RACE_CONFIG, "racers": RACERS})

        creating = time.monotonic()
        for start in range(0, races, 10):  # ten at a time
            for http, response in await asyncio.gather(*(
                create(clients[index % len(clients)])
                for index in range(start, min(races, start + 10))
            )):
                create_codes.append(response.status_code)
                if response.status_code == 201:
                    body = response.json()
                    created.append((body["id"], body.get("owner_token"), http))
        began = time.monotonic()

        async def step(
            race_id: str, token: str | None, http: httpx.AsyncClient
        ) -> tuple[int, float, str | None]:
            try:
                try:
                    response = await http.post(f"/api/races/{race_id}/step",
                                               json={"epochs": epochs}, headers=bearer(token))
                except httpx.RemoteProtocolError:  # a keep-alive connection the server closed
                    response = await http.post(f"/api/races/{race_id}/step",
                                               json={"epochs": epochs}, headers=bearer(token))
            except httpx.HTTPError:
                return -1, time.monotonic() - began, None
            first = time.monotonic() - began
            _code, body = await follow_job(http, response, token, deadline - first)
            return response.status_code, first, body.get("job", {}).get("state")

        results = await asyncio.gather(*(step(*race) for race in created))
        elapsed = time.monotonic() - began
        window = (began, time.monotonic())
        for race_id, token, http in created:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(f"/api/races/{race_id}", headers=bearer(token))
    sampler.cancel()
    memory = ""
    if server is not None:
        await asyncio.sleep(1.0)
        memory = (f"; web RSS {rss[0] / 1e6:.0f} -> peak {max(rss) / 1e6:.0f} -> "
                  f"{server.rss() / 1e6:.0f} MB after deleting them")
    codes = [code for code, _, _ in results]
    firsts = [first for _, first, _ in results]
    return Outcome(
        f"{races} races ({statuses(create_codes)} in {began - creating:.1f} s), "
        f"{len(created)} steps of {epochs} epochs "
        f"x {len(RACERS)} racers at once: {statuses(codes)}; first answers by "
        f"{max(firsts, default=0):.2f} s, all done in {elapsed:.1f} s{memory}",
        {"create_codes": create_codes, "codes": codes, "first_answers": firsts,
         "states": [state for _, _, state in results], "seconds": elapsed},
        window,
    )


async def attack_grab(
    base: str, count: int = 200, one_token: bool = False, source: str | None = None,
    deadline: float = 20.0,
) -> Outcome:
    """`count` creates from one address, 10 at a time (each a new owner, or one owner's token
    reused); then the victim (another address) tries to create one."""
    async with http_client(base, source, timeout=deadline) as http:
        token: str | None = None
        codes: list[int] = []
        retry_after: list[str | None] = []
        details: list[str] = []
        made: list[tuple[str, str | None]] = []
        began = time.monotonic()
        while len(codes) < count and time.monotonic() - began < deadline:
            batch = 1 if one_token and token is None else min(10, count - len(codes))
            responses = await asyncio.gather(*(
                http.post("/api/sessions", json={}, headers=bearer(token if one_token else None))
                for _ in range(batch)
            ), return_exceptions=True)
            for response in responses:
                if isinstance(response, BaseException):
                    codes.append(-1)
                    retry_after.append(None)
                    if len(details) < 3:
                        details.append(repr(response))
                    continue
                codes.append(response.status_code)
                retry_after.append(response.headers.get("retry-after"))
                body = _json(response)
                if response.status_code == 201:
                    made.append((body["id"], body.get("owner_token")))
                    token = token or body.get("owner_token")
                elif len(details) < 3:
                    details.append(str(body.get("detail"))[:160])
        elapsed = time.monotonic() - began
        async with http_client(base, VICTIM) as victim:
            victim_code, victim_body = await create_session(victim, {})
            if victim_code == 201:
                await victim.delete(f"/api/sessions/{victim_body['id']}",
                                    headers=bearer(victim_body.get("owner_token")))
        for session_id, owner in made:
            with contextlib.suppress(httpx.HTTPError):
                await http.delete(f"/api/sessions/{session_id}", headers=bearer(owner))
    refused = [r for c, r in zip(codes, retry_after, strict=True) if c == 429]
    return Outcome(
        f"{count} creates in {elapsed:.1f} s: {statuses(codes)} "
        f"({sum(r is not None for r in refused)} of the 429s with Retry-After); "
        f"then the victim's create: {victim_code}",
        {"codes": codes, "retry_after": retry_after, "details": details,
         "victim_code": victim_code},
    )


def raw_websocket(port: int, path: str, source: str | None = None, receive_buffer: int = 4096,
                  extra_headers: str = "", host: str | None = None) -> socket.socket:
    """A websocket upgrade on a plain socket that will never be read (tiny receive buffer)."""
    source = source or _attacker[-1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra_headers}\r\n".encode()
    )
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Drain what the kernel holds without waiting: True when the server's FIN/RST is there."""
    sock.setblocking(False)
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


async def attack_non_readers(
    server: Server, sockets: int = 100, hold: float = 15.0, config: dict[str, Any] | None = None,
    sources: list[str] | None = None,
) -> Outcome:
    """`sockets` websockets that never read, on one session playing flat out with big frames;
    held `hold` seconds, then counted: which the server closed, its RSS at the peak and after."""
    async with http_client(server.base) as http:
        status, session = await create_session(http, config or {"grid_resolution": 200})
        assert status == 201, (status, session)
        token = session.get("owner_token")
        await command(http, session["id"], {"type": "play"}, token)
        rss_before = server.tree_rss()
        began = time.monotonic()
        addresses = sources or [_attacker[-1]]
        opened = [raw_websocket(server.port, session["ws_url"], addresses[i % len(addresses)])
                  for i in range(sockets)]
        window_end = began
        peak = rss_before
        closed_at: dict[int, float] = {}
        while time.monotonic() - began < hold:
            await asyncio.sleep(0.5)
            peak = max(peak, server.tree_rss())
            for index, sock in enumerate(opened):
                if index not in closed_at and _peer_closed(sock):
                    closed_at[index] = time.monotonic() - began
        window_end = time.monotonic()
        closed = sum(closed_by_server(sock) for sock in opened)
        for sock in opened:
            sock.close()
        await command(http, session["id"], {"type": "pause"}, token)
        await asyncio.sleep(1.0)
        rss_after = server.tree_rss()
        await http.delete(f"/api/sessions/{session['id']}", headers=bearer(token))
    last = max(closed_at.values(), default=None)
    return Outcome(
        f"{sockets} non-reading sockets held {hold:.0f} s: {closed} closed by the server"
        + (f" (the last at {last:.1f} s)" if last is not None else "")
        + f"; server RSS {rss_before / 1e6:.0f} -> peak {peak / 1e6:.0f} -> "
        f"{rss_after / 1e6:.0f} MB after",
        {"closed": closed, "closed_at": closed_at, "rss_before": rss_before, "rss_peak": peak,
         "rss_after": rss_after},
        (began, window_end),
    )


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the server ended this TCP connection, from the kernel's TCP state (TCP_INFO's
    first byte): CLOSE_WAIT (8) after its FIN, CLOSE (7) after its reset; nothing is read."""
    try:
        state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
    except OSError:
        return True
    return state in (7, 8)


async def attack_big_message(server: Server, megabytes: float = 10.0) -> Outcome:
    """One websocket text message of `megabytes` MB on an attacker's session."""
    async with http_client(server.base) as http:
        status, session = await create_session(http, {})
        assert status == 201, (status, session)
        token = session.get("owner_token")
        rss_before = server.rss()
        message = json.dumps({"type": "pause", "id": "x" * int(megabytes * 1e6)})
        answer: str = ""
        code: int | None = None
        began = time.monotonic()
        ws = await ws_connect(server.ws_base + session["ws_url"])
        try:
            await ws.send(message)
            while time.monotonic() - began < 15:
                received = await asyncio.wait_for(ws.recv(), 15)
                if isinstance(received, str) and json.loads(received)["type"] == "error":
                    answer = received[:200]
                    break
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            await ws.close()
            code = ws.close_code
        elapsed = time.monotonic() - began
        rss_peak = server.rss()
        await http.delete(f"/api/sessions/{session['id']}", headers=bearer(token))
    return Outcome(
        f"{megabytes:g} MB message: "
        + (f"error message {answer[:90]!r}" if answer else f"closed with {code}")
        + f" in {elapsed:.2f} s; web RSS {rss_before / 1e6:.0f} -> {rss_peak / 1e6:.0f} MB",
        {"answer": answer, "close_code": code, "seconds": elapsed,
         "rss_growth": rss_peak - rss_before},
    )


SURROGATE = "\\ud800"  # the JSON escape of a lone surrogate (valid JSON, not valid UTF-8)


async def attack_surrogates(server: Server) -> Outcome:
    """A lone surrogate in parse-csv `text`, a create's `dataset`, a race `label`, a REST
    command's `id` and a websocket command's `id`; then: does the websocket still answer?"""
    bodies = {
        "parse-csv text": ("/api/datasets/parse-csv", f'{{"text": "1,2,{SURROGATE}"}}'),
        "create dataset": ("/api/sessions", f'{{"dataset": "{SURROGATE}"}}'),
        "race label": ("/api/races", f'{{"racers": [{{"label": "{SURROGATE}"}}]}}'),
    }
    codes: dict[str, int] = {}
    for name, (path, body) in bodies.items():
        async with http_client(server.base) as http:  # its own connection: it may be dropped
            try:
                response = await http.post(path, content=body,
                                           headers={"content-type": "application/json"})
                codes[name] = response.status_code
            except httpx.HTTPError:
                codes[name] = -1  # the connection dropped
    async with http_client(server.base) as http:
        status, session = await create_session(http, {})
        assert status == 201, (status, session)
        token = session.get("owner_token")
        try:
            response = await http.post(
                f"/api/sessions/{session['id']}/commands",
                content=f'{{"type": "pause", "id": "{SURROGATE}"}}',
                headers={"content-type": "application/json", **bearer(token)},
            )
            codes["REST command id"] = response.status_code
        except httpx.HTTPError:
            codes["REST command id"] = -1
    async with http_client(server.base) as http:
        ws_answer, alive = await _surrogate_over_ws(server.ws_base + session["ws_url"], token)
        await http.delete(f"/api/sessions/{session['id']}", headers=bearer(token))
    shown = ", ".join(f"{name} {code}" for name, code in codes.items())
    return Outcome(
        f"{shown}; websocket command id: {ws_answer}, connection "
        f"{'alive' if alive else 'dropped'}",
        {"codes": codes, "ws_answer": ws_answer, "ws_alive": alive},
    )


async def _surrogate_over_ws(url: str, token: str | None) -> tuple[str, bool]:
    async with await ws_connect(url) as ws:
        if token:
            await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.send(f'{{"type": "pause", "id": "{SURROGATE}"}}')
        answer = await _next_reply(ws, 5.0)
        await ws.send(json.dumps({"type": "pause", "id": "after"}))
        after = await _next_reply(ws, 5.0, want_id="after")
        return answer, after is not None and after != "dropped"


async def _next_reply(ws: ClientConnection, seconds: float, want_id: Any = None) -> str:
    """The type of the next ack/error/prediction (with `want_id` when given), or 'dropped'."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            message = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            if not isinstance(message, str):
                continue
            parsed = json.loads(message)
            if parsed.get("type") in ("ack", "error", "prediction") and (
                want_id is None or parsed.get("id") == want_id
            ):
                return str(parsed["type"])
    except (ConnectionClosed, TimeoutError):
        return "dropped"
    return "dropped"


async def attack_long_ids(server: Server, lengths: tuple[int, ...] = (20_000, 5_000)) -> Outcome:
    """Websocket upgrades with session ids of `lengths` characters: is each answered?"""
    outcomes = [await attack_long_id(server, length) for length in lengths]
    return Outcome("; ".join(o.summary for o in outcomes),
                   {"outcomes": [o.facts for o in outcomes]})


async def attack_long_id(server: Server, length: int = 20_000) -> Outcome:
    """A websocket upgrade whose session id is `length` characters: is it answered?
    (Over ~8 KB, uvicorn's websockets parser answers 414 itself; under it, the route must.)"""
    began = time.monotonic()
    url = f"{server.ws_base}/ws/sessions/{'a' * length}"
    answer: str
    try:
        ws = await asyncio.wait_for(ws_connect(url), 5.0)
        try:
            message = await asyncio.wait_for(ws.recv(), 5.0)
            answer = f"accepted, then {str(message)[:80]!r}"
            await asyncio.wait_for(ws.wait_closed(), 5.0)
        except ConnectionClosed:
            answer = "accepted, then closed"
        except TimeoutError:
            answer = "accepted, then nothing"
        code = ws.close_code
        answer += f" (close {code})"
        status: int | None = code
    except InvalidStatus as error:
        status = error.response.status_code
        answer = f"HTTP {status}"
    except (TimeoutError, OSError, ConnectionClosed) as error:
        status = None
        answer = f"no answer ({type(error).__name__})"
    except Exception as error:  # e.g. an invalid handshake answer
        status = None
        answer = f"no valid answer ({type(error).__name__})"
    elapsed = time.monotonic() - began
    return Outcome(f"ws id of {length:,} characters: {answer} in {elapsed:.2f} s",
                   {"status": status, "answer": answer, "seconds": elapsed})


async def subscribers(http: httpx.AsyncClient) -> float | None:
    """The server's `nn_subscribers` gauge from /metrics (None where there is no /metrics)."""
    response = await http.get("/metrics")
    if response.status_code != 200:
        return None
    for line in response.text.splitlines():
        if line.startswith("nn_subscribers"):
            return float(line.split()[-1])
    return None


async def attack_close_in_hello(server: Server, epochs: int = 30_000) -> Outcome:
    """Open the websocket of an `epochs`-long session, take the hello and close while its
    history's frames still go out: how long the client's close takes (a client that keeps
    reading, max_queue=None) and, where /metrics exists, how long the server keeps the
    subscriber. (A client that stops reading, such as websockets' default max_queue=16 with
    nobody calling recv(), never sees the server's close frame behind the queued frames and
    gives up after its close_timeout, 10 s, with 1006: that wait is the client's own.)"""
    async with http_client(server.base) as http:
        session_id, token = await long_session(http, epochs)
        baseline = await subscribers(http)
        results = []
        window_start = time.monotonic()
        for _ in range(2):
            ws = await ws_connect(f"{server.ws_base}/ws/sessions/{session_id}", max_queue=None)
            await ws.recv()  # the hello; its history's frames follow
            began = time.monotonic()
            await ws.close()
            closed = time.monotonic() - began
            gone: float | None = None
            while baseline is not None and time.monotonic() - began < 10:
                if await subscribers(http) == baseline:
                    gone = time.monotonic() - began
                    break
                await asyncio.sleep(0.02)
            results.append((closed, ws.close_code, gone))
        window = (window_start, time.monotonic())
        await http.delete(f"/api/sessions/{session_id}", headers=bearer(token))
    return Outcome(
        f"close right after the hello of {epochs:,} epochs (x2): the client's close took "
        + ", ".join(f"{s:.2f} s ({c})" for s, c, _ in results)
        + "; the server dropped the subscriber after "
        + (", ".join(f"{g:.2f} s" if g is not None else "> 10 s" for _, _, g in results)
           if baseline is not None else "? (no /metrics)"),
        {"seconds": max(s for s, _, _ in results), "codes": [c for _, c, _ in results],
         "server_seconds": [g for _, _, g in results], "metrics": baseline is not None},
        window,
    )


Attack = Callable[[Server], Awaitable[Outcome]]
