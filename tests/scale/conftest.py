"""Two real web replicas on the test Ray cluster, for the `ray` tests of issue 12.

The Ray head is tests/conftest.py's `ray_head` (`ray start --head` on loopback, shared with the
session tests' `[ray]` cases); here two `nn-playground` processes with NN_PLAYGROUND_BACKEND=ray
join it, in the namespace NAMESPACE, with one SQLite database (the shards write checkpoints to
it, and restore from it). Started once for the session, stopped by process group at the end.

The tests here are marked `ray`; they are deselected unless the `-m` expression names `ray`
(tests/conftest.py; scripts/test.sh runs them in their own step: `pytest -m ray -p no:xdist`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.ray_head import BIN, stop_group
from tests.conftest import RAY_NAMESPACE, RayHead, free_port

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = RAY_NAMESPACE  # the replicas' namespace is the test process's own
NGINX = Path("/usr/sbin/nginx")
NGINX_MISSING = (
    "Debian's nginx is missing: apt-get install -y nginx (scripts/test.sh's ray step does)"
)
__all__ = [
    "BIN",
    "NGINX",
    "ROOT",
    "Cluster",
    "accepted_websockets",
    "create",
    "frame_header",
    "free_port",
    "run_nginx",
    "stop_group",
    "ws_url",
]


@dataclass
class Replica:
    """One web replica: its process, URL and log file."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    output: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.output is not None:
            self.output.close()
        self.output = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "nn-playground"), "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"replica on {self.port} exited: {self.log.read_text()[-3000:]}"
            )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"replica on {self.port} not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """kill -9 the replica (its whole process group)."""
        assert self.process is not None
        stop_group(self.process, signal.SIGKILL)


@dataclass
class Cluster:
    """The Ray head, the replicas, and a driver connected to the cluster (to find shards)."""

    address: str
    directory: Path
    replicas: list[Replica] = field(default_factory=list)

    def ray(self) -> Any:
        """The `ray` module, connected to this cluster in the test process (ray_head)."""
        import ray

        return ray

    def shard_of(self, session_id: str) -> Any:
        """The shard actor that hosts a session (the directory's answer)."""
        ray = self.ray()
        directory = ray.get_actor("nnpg-directory", namespace=NAMESPACE)
        found = ray.get(directory.lookup.remote(session_id))
        assert found is not None, f"the directory does not know session {session_id}"
        return ray.get_actor(f"nnpg-shard-{found[0]}", namespace=NAMESPACE)


@pytest.fixture(scope="session")
def ray_cluster(ray_head: RayHead) -> Iterator[Cluster]:
    """Two replicas on the test Ray head (see the module docstring)."""
    cluster = Cluster(ray_head.address, ray_head.directory)
    try:
        replica_env = {
            **ray_head.env,
            "RAY_ADDRESS": cluster.address,
            "NN_PLAYGROUND_BACKEND": "ray",
            "NN_PLAYGROUND_RAY_NAMESPACE": NAMESPACE,
            "NN_PLAYGROUND_DATA_DIR": str(ray_head.directory / "data"),
            "NN_PLAYGROUND_CHECKPOINT_SECONDS": "1",
            "NN_PLAYGROUND_RAY_REPLICA_TIMEOUT": "3",
            "NN_PLAYGROUND_MAX_SESSIONS_PER_OWNER": "3",
            "NN_PLAYGROUND_MAX_RUNNING_PER_OWNER": "2",
            "NN_PLAYGROUND_TRUSTED_PROXIES": '["127.0.0.1"]',
        }
        for name in ("a", "b"):
            replica = Replica(free_port(), replica_env, ray_head.directory / f"replica-{name}.log")
            cluster.replicas.append(replica)
        for replica in cluster.replicas:  # both get or create the same actors (get_if_exists)
            replica.start()
        for replica in cluster.replicas:
            replica.wait_ready()
        yield cluster
    finally:
        running = [r.process for r in cluster.replicas if r.process is not None]
        for process in running:  # all at once, then wait for each
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for replica in cluster.replicas:
            if replica.process is not None:
                stop_group(replica.process)
            if replica.output is not None:
                replica.output.close()
        # The head (and every process started with its environment, the shards included) is
        # stopped by ray_head at the end of the run.


def create(base: str, token: str | None = None, **config: Any) -> dict[str, Any]:
    """POST /api/sessions on a replica (as `token`'s owner, or a new owner)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    reply = httpx.post(base + "/api/sessions", json=config, headers=headers, timeout=30)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


def ws_url(base: str, session_id: str) -> str:
    """The websocket of a session on a replica (or through the proxy)."""
    return base.replace("http://", "ws://") + f"/ws/sessions/{session_id}"


def frame_header(message: bytes) -> dict[str, Any]:
    """The JSON header of a binary frame (docs/protocol.md)."""
    (length,) = struct.unpack(">I", message[:4])
    header: dict[str, Any] = json.loads(message[4 : 4 + length])
    return header


@contextlib.contextmanager
def run_nginx(replicas: Sequence[Replica], prefix: Path) -> Iterator[str]:
    """Debian's nginx with the repo's deploy/nginx.conf on a loopback port, in front of the
    replicas; yields its URL once /health answers through it. It runs unprivileged from a copy
    of the file in `prefix` whose listen port and upstream servers are replaced by the test's;
    nothing else changes. Stopped (its process group) on exit."""
    assert NGINX.is_file(), NGINX_MISSING
    (prefix / "tmp").mkdir(exist_ok=True)
    port = free_port()
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = re.findall(r"^\s*server 127\.0\.0\.1:\d+", config, flags=re.M)
    assert len(servers) == len(replicas), f"deploy/nginx.conf lists {len(servers)} replicas"
    for line, replica in zip(servers, replicas, strict=True):
        config = config.replace(line, re.sub(r":\d+", f":{replica.port}", line), 1)
    config, listens = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{port};", config)
    assert listens == 1
    (prefix / "nginx.conf").write_text(config)
    log_path = prefix / "nginx.log"
    log = log_path.open("wb")
    command = [str(NGINX), "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"]
    process = subprocess.Popen(
        [*command, "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        answer = "no answer"
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                reply = httpx.get(url + "/health", timeout=2)
                if reply.status_code == 200:
                    break
                answer = f"{reply.status_code} {reply.text[:300]}"
            except httpx.HTTPError as error:
                answer = repr(error)
            assert time.monotonic() < deadline, f"nginx on {port}: /health gave {answer}"
            time.sleep(0.1)
        yield url
    finally:
        stop_group(process)
        log.close()


@pytest.fixture(scope="module")
def nginx_proxy(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """run_nginx in front of the cluster's two replicas, for one test module."""
    with run_nginx(ray_cluster.replicas, tmp_path_factory.mktemp("nginx")) as url:
        yield url


def accepted_websockets(replica: Replica, path: str) -> int:
    """How many websockets to `path` (e.g. /ws/sessions/ID) the replica's own log says it
    accepted (uvicorn's access line, in the replica's JSON log)."""
    return replica.log.read_text().count(f'WebSocket {path}\\" [accepted]')
