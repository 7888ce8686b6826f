"""Shared fixtures: an in-process app client and a real uvicorn server on a free port, a real
PostgreSQL server, and a real local Ray cluster (the session tests run on both backends)."""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.ws_protocol import uvicorn_options
from app.main import create_app
from app.settings import Settings
from app.storage import Storage, tables
from bench.ray_head import head_command, kill_marked, stop_group

# Every app of the test run keeps its database in a directory of its own under this one
# (tests never write ./data); removed when the run ends.
TEST_DATA_ROOT = tempfile.mkdtemp(prefix="nn-playground-tests-")
atexit.register(shutil.rmtree, TEST_DATA_ROOT, True)


def fresh_data_dir() -> str:
    """A new empty data directory (a fresh SQLite database) for one app."""
    return tempfile.mkdtemp(dir=TEST_DATA_ROOT)


# Servers a test starts as processes (`nn-playground`, `python -c "...run()"`) read their
# settings from the environment: never ./data nor a database the developer pointed at.
os.environ["NN_PLAYGROUND_DATA_DIR"] = fresh_data_dir()
os.environ.pop("NN_PLAYGROUND_DATABASE_URL", None)


@pytest.fixture(scope="module", autouse=True)
def module_data_dir() -> Iterator[None]:
    """Each test module's process-started servers get a database of their own (a server of
    an earlier module would otherwise come back in theirs, sessions and all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NN_PLAYGROUND_DATA_DIR", fresh_data_dir())
        yield


@pytest.fixture(autouse=True)
def data_dir_env_of_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """... and so does each test's (module-scoped servers keep the module's)."""
    monkeypatch.setenv("NN_PLAYGROUND_DATA_DIR", fresh_data_dir())


def make_settings(**overrides: Any) -> Settings:
    """Test settings: one worker thread in-process (fast start) and a fresh data directory
    (its own SQLite database) unless overridden."""
    # rate_limit_per_second: only tests/ops and tests/abuse meet the per-address rate limit.
    values: dict[str, Any] = {"worker_processes": 0, "rate_limit_per_second": 1e6, **overrides}
    values.setdefault("data_dir", fresh_data_dir())
    # TestClient's Host is "testserver": it joins the Host allow-list (TrustedHostMiddleware).
    values.setdefault("allowed_hosts", ["127.0.0.1", "localhost", "::1", "testserver"])
    values.setdefault("rate_limit_per_second", 1e6)
    return Settings(**values)


SESSION_PATH = re.compile(r"^/(?:api|ws)/sessions/([^/]+)")
CREATE_PATHS = ("/api/sessions", "/api/sessions/import")


class OwnerTokens:
    """httpx event hooks that make a TestClient act as the owner of every session it created.

    Each create (no Authorization: a new owner per session) returns an owner_token; later
    requests to that session's routes (websocket upgrade included) carry it, and other requests
    (e.g. GET /api/sessions) carry the latest one, unless the test set Authorization itself.
    Ownership tests use bare TestClients instead.
    """

    def __init__(self) -> None:
        self.by_session: dict[str, str] = {}
        self.latest: str | None = None

    def attach(self, request: httpx.Request) -> None:
        """Request hook: add the owner token the request's session needs."""
        path = request.url.path
        if "authorization" in request.headers or (
            request.method == "POST" and path in CREATE_PATHS
        ):
            return
        match = SESSION_PATH.match(path)
        token = self.by_session.get(match.group(1)) if match else self.latest
        if token is not None:
            request.headers["authorization"] = f"Bearer {token}"

    def remember(self, response: httpx.Response) -> None:
        """Response hook: keep the token of a session this client created."""
        if response.request.method != "POST" or response.status_code != 201:
            return
        response.read()
        with contextlib.suppress(ValueError):
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("owner_token"), str):
                self.by_session[str(body.get("id"))] = body["owner_token"]
                self.latest = body["owner_token"]


RECEIVE_TIMEOUT = 30.0  # s a test's websocket waits for the server's next message


def receive_within(socket: Any, timeout: float = RECEIVE_TIMEOUT) -> Any:
    """WebSocketTestSession.receive, failing with TimeoutError after `timeout` s instead of
    waiting forever for a message that never comes (a hang would stop the whole run)."""

    async def receive() -> Any:
        with anyio.fail_after(timeout):
            return await socket._send_rx.receive()

    return socket.portal.call(receive)


class AuthedSocket:
    """`websocket_connect` of an owned client: the session's token goes as the first message
    (`{"type": "auth", ...}`) and the server's `{"type": "auth", "owner": true}` reply is
    skipped by receive(), so old tests read the same messages as before owners existed. Every
    receive() waits at most RECEIVE_TIMEOUT."""

    def __init__(self, session: Any, token: str | None) -> None:
        self.session, self.token = session, token

    def __enter__(self) -> Any:
        socket = self.session.__enter__()
        socket.receive = lambda: receive_within(socket)
        if self.token is None:
            return socket
        socket.send_json({"type": "auth", "token": self.token})
        receive = socket.receive

        def receive_skipping_auth() -> Any:
            while True:
                message = receive()
                text = message.get("text")
                if text is None or len(text) > 100 or json.loads(text).get("type") != "auth":
                    return message

        socket.receive = receive_skipping_auth
        return socket

    def __exit__(self, *exc: object) -> Any:
        return self.session.__exit__(*exc)


def owned_client(test_client: TestClient) -> TestClient:
    """Give a TestClient the OwnerTokens hooks (returns it)."""
    tokens = OwnerTokens()
    test_client.event_hooks = {"request": [tokens.attach], "response": [tokens.remember]}
    connect = test_client.websocket_connect

    def websocket_connect(url: str, *args: Any, **kwargs: Any) -> Any:
        match = SESSION_PATH.match(httpx.URL(url).path)
        token = tokens.by_session.get(match.group(1)) if match else None
        return AuthedSocket(connect(url, *args, **kwargs), token)

    test_client.websocket_connect = websocket_connect  # type: ignore[method-assign]
    return test_client


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Where the sessions of `app`, `client` and `new_app` live: "local" (one in-process worker
    thread), or "ray" (shard actors on the test Ray cluster) in the modules that set
    BOTH_BACKENDS = True, whose tests then run once on each (pytest_generate_tests)."""
    return str(getattr(request, "param", "local"))


@pytest.fixture
def new_app(backend: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., FastAPI]]:
    """create_app(make_settings(**overrides)) on the test's backend. On ray every app joins
    the run's namespace (RaySpace, `ray_space`); the sessions the test left there are deleted
    after it, so the next test starts from an empty cluster."""
    if backend == "local":
        yield lambda **overrides: create_app(make_settings(**overrides))
        return
    space: RaySpace = request.getfixturevalue("ray_space")
    yield lambda **overrides: create_app(make_settings(**{**space.settings, **overrides}))
    space.clear()


@pytest.fixture
def app(new_app: Callable[..., FastAPI]) -> FastAPI:
    """A fresh app whose sessions live in one in-process worker thread (or, on the ray
    backend, in the shard actors of `ray_space`)."""
    return new_app()


@pytest.fixture
def client(app: FastAPI, backend: str, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """A TestClient with the lifespan running (workers started, stopped after the test), the
    owner of every session it creates (OwnerTokens). On ray, the sessions it left in the
    test namespace (`ray_space`) are deleted through it before it stops."""
    with TestClient(app) as test_client:
        yield owned_client(test_client)
        if backend == "ray":
            request.getfixturevalue("ray_space").clear(test_client)


class LiveServer:
    """A uvicorn server of create_app() running in a thread on a pre-bound loopback socket."""

    def __init__(self, **overrides: Any) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        origins = [self.url, f"http://localhost:{self.port}"]
        self.app = create_app(make_settings(allowed_origins=origins, **overrides))
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on",
            **uvicorn_options(self.app.state.settings),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30.0
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30.0)
        self.socket.close()


@pytest.fixture(scope="session")
def live_server() -> Iterator[str]:
    """Base URL of a real server (one worker process) shared by the whole test session.

    Its allowed_origins are its own URL (127.0.0.1 and localhost), so a browser page served by
    it may open the websocket. Browser tests reuse this fixture.
    """
    with LiveServer(worker_processes=1) as server:
        yield server.url


# ---- the database (issue 10): a real PostgreSQL server, and `storage` on both backends ----

POSTGRES_MISSING = (
    "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb, pg_ctl) are missing: "
    "install Debian's `postgresql` package (apt-get install -y postgresql; scripts/test.sh "
    "does) - the storage tests run against a real server, never a mock"
)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory; fails the test (never skips) with
    what to install when there is none."""
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        pytest.fail(POSTGRES_MISSING, pytrace=False)
    return Path(initdbs[-1]).parent


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL server for the whole test run (SQLAlchemy + psycopg 3).

    initdb and pg_ctl on a temporary directory and a free loopback port (as the `postgres`
    user when we are root: the server refuses to run as root); no fsync (a test database);
    stopped and removed at the end. One database, `playground`: tests clean their own rows.
    """
    bindir = postgres_bindir()
    root = Path(tempfile.mkdtemp(prefix="nn-playground-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*command: str | Path) -> None:
        done = subprocess.run(
            [*as_postgres, *map(str, command)], capture_output=True, text=True, timeout=60
        )
        if done.returncode:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            pytest.fail(f"{command[0]} failed: {done.stdout}{done.stderr}{log}", pytrace=False)

    run(bindir / "initdb", "-D", data, "-A", "trust", "-U", "nn", "--no-sync", "-E", "UTF8")
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    run(bindir / "pg_ctl", "-D", data, "-o", options, "-l", root / "log", "-w", "start")
    try:
        run(bindir / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "nn", "playground")
        yield f"postgresql+psycopg://nn@127.0.0.1:{port}/playground"
    finally:
        run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A migrated Storage, once on a fresh SQLite file and once on the PostgreSQL server
    (its tables emptied first: the server's one database is shared by the whole run)."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    store = Storage(make_settings(data_dir=tmp_path, database_url=url))
    store.migrate()
    if url is not None:
        with store.engine.begin() as conn:
            for table in reversed(tables.metadata.sorted_tables):
                conn.execute(table.delete())
    try:
        yield store
    finally:
        store.close()


# ---- which tests run alone (scripts/test.sh runs the rest in two xdist processes first) -------
# These assert wall-clock figures (latency percentiles, frames per second, deadlines, a restore
# within 2 s) or drive real Chromium; on 2 shared cores a neighbouring test process would make
# them measure their neighbour. Everything else asserts values, which load cannot change.
SERIAL_PATHS = (
    "tests/abuse/",
    "tests/browser/",
    "tests/persistence/",
    "tests/api/test_edges.py",
    "tests/api/test_jobs.py",
    "tests/api/test_live_server.py",
    "tests/api/test_main.py",
    "tests/api/test_paced_api.py",
    "tests/api/test_slow_consumers.py",
    "tests/api/test_stream.py",
    "tests/api/test_classes.py",
    "tests/sessions/test_pace.py",
    "tests/sessions/test_unwatched_pause.py",
    "tests/sessions/test_stability.py",
    "tests/ops/",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of SERIAL_PATHS `serial`; deselect the `ray` tests unless the -m
    expression names `ray` (scripts/test.sh runs them in their own step: `pytest -m ray`)."""
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if where.startswith(SERIAL_PATHS):
            item.add_marker(pytest.mark.serial)
    if "ray" in (config.getoption("markexpr", "") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("ray") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with BOTH_BACKENDS = True runs each test that uses `backend` (`app`, `client`,
    `new_app`) once per backend: `[local]` in the main steps, `[ray]` in the ray step."""
    if getattr(metafunc.module, "BOTH_BACKENDS", False) and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


# ---- Ray (issue 12): a real local Ray head for the whole run, a namespace for the apps ------

RAY_NAMESPACE = "nnpg_tests"  # the test process's own (the driver's) namespace
RAY_MARKER = "NNPG_TEST_RAY_CLUSTER"  # in the environment of every process of the test cluster
RAY_MISSING = 'Ray is not installed: pip install -e ".[ray]" (scripts/test.sh\'s ray step does)'
BACKENDS = ["local", pytest.param("ray", marks=pytest.mark.ray)]
RAY_SHARDS = 2  # shard actors of a module's namespace (sessions are placed across them)


@dataclass
class RayHead:
    """A running Ray head on loopback; the test process is connected to it as a driver."""

    address: str
    directory: Path  # Ray's temp dir (logs, sockets); the head's log is head.log
    env: dict[str, str]  # the head's environment (processes started with it are ours)

    def ray(self) -> Any:
        """The `ray` module, connected to this cluster."""
        import ray

        return ray


def connect_driver(address: str, head: subprocess.Popen[bytes], log: Path) -> None:
    """ray.init the test process on the cluster, once the head answers (up to 60 s)."""
    import ray

    deadline = time.monotonic() + 60.0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ray.init(
                    address=address,
                    namespace=RAY_NAMESPACE,
                    log_to_driver=False,
                    configure_logging=False,
                )
            return
        except Exception as error:
            with contextlib.suppress(Exception):
                ray.shutdown()
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Ray head did not start: {error!r}\n"
                    f"{log.read_text(errors='replace')[-3000:]}"
                ) from error
            time.sleep(0.3)


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """A real Ray head for the whole run: `ray start --head` on loopback (2 CPUs, a 100 MB
    object store, no dashboard) in a temporary directory; the test process joins it as a
    driver. Stopped (and every process it started killed) at the end. Ray missing is a
    failure saying what to install, not a skip."""
    try:
        import ray
    except ImportError:
        pytest.fail(RAY_MISSING)
    directory = Path(tempfile.mkdtemp(prefix="nnray"))  # short: Ray's socket paths are long
    port = free_port()
    # Ray 2.60 turns token auth on for a new head when ~/.ray/auth_token exists (left by any
    # ray.init() without an address) unless RAY_AUTH_MODE says otherwise: the replicas and this
    # driver, which read it from their environment, would then be refused.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", RAY_MARKER: str(directory)}
    log_path = directory / "head.log"
    log = log_path.open("wb")
    head = subprocess.Popen(
        head_command(port, directory, free_port()),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        connect_driver(address, head, log_path)
        yield RayHead(address, directory, env)
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        stop_group(head, signal.SIGKILL)  # a throwaway cluster: no graceful stop needed
        log.close()
        kill_marked(RAY_MARKER, str(directory))
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class RaySpace:
    """A Ray namespace for in-process apps: their settings (all join the same shard and
    directory actors, made by the first app, as web replicas do) and their cleanup."""

    head: RayHead
    name: str
    settings: dict[str, Any]

    def _actors(self) -> tuple[Any, list[Any]] | None:
        from app.backends.ray_directory import DIRECTORY
        from app.backends.ray_shard import shard_name

        ray = self.head.ray()
        try:
            directory = ray.get_actor(DIRECTORY, namespace=self.name)
            shards = [ray.get_actor(shard_name(i), namespace=self.name) for i in range(RAY_SHARDS)]
        except ValueError:  # no app of this module started on ray yet
            return None
        return directory, shards

    def sessions(self) -> list[str]:
        """Every session the namespace's directory places on a shard."""
        actors = self._actors()
        if actors is None:
            return []
        ray = self.head.ray()
        directory = actors[0]
        return [sid for i in range(RAY_SHARDS) for sid in ray.get(directory.sessions_on.remote(i))]

    def sweep(self, ahead: float) -> tuple[list[str], int]:
        """Run every shard's idle janitor now, as if `ahead` more seconds had passed
        (Shard.sweep): (the sessions it evicted, the sessions the shards still hold)."""
        actors = self._actors()
        assert actors is not None, "no app started on the ray backend yet"
        ray = self.head.ray()
        evicted = [sid for shard in actors[1] for sid in ray.get(shard.sweep.remote(ahead))[0]]
        held = sum(ray.get(shard.stats.remote())["sessions"] for shard in actors[1])
        return evicted, held

    def clear(self, client: TestClient | None = None) -> None:
        """Delete every session of the namespace through an app's manager (`client`'s, or a
        cleanup app's when the test's apps are gone): no session, running count or quota of
        a test leaks into the next."""
        from app.sessions.manager import SessionCallError

        left = self.sessions()
        if not left:
            return
        with contextlib.ExitStack() as stack:
            if client is None:
                client = stack.enter_context(TestClient(create_app(make_settings(**self.settings))))
            manager = client.app.state.manager  # type: ignore[attr-defined]
            assert client.portal is not None
            for session_id in left:
                with contextlib.suppress(SessionCallError):
                    client.portal.call(manager.delete, session_id)
        assert self.sessions() == [], "sessions outlived their test's cleanup"

    def kill(self) -> None:
        """Kill the namespace's actors (detached: they would outlive the run otherwise)."""
        actors = self._actors()
        if actors is not None:
            directory, shards = actors
            for actor in (directory, *shards):
                self.head.ray().kill(actor)


@pytest.fixture(scope="session")
def ray_space(ray_head: RayHead) -> Iterator[RaySpace]:
    """The session tests' namespace on the test Ray cluster (see RaySpace): its own shards (no
    CPU reserved, so they fit beside the replicas' on the 2-CPU head) and its own database,
    which the shards write their checkpoints to. One for the run (a shard takes seconds to
    start); every test leaves it empty (`new_app`, `client`); its actors are killed at the
    end."""
    name = f"nnpg_sessions_{secrets.token_hex(3)}"
    settings = {
        "backend": "ray",
        "ray_address": ray_head.address,
        "ray_namespace": name,
        "ray_shards": RAY_SHARDS,
        "ray_shard_cpus": 0.0,
        "data_dir": fresh_data_dir(),
    }
    space = RaySpace(ray_head, name, settings)
    try:
        yield space
    finally:
        space.kill()
