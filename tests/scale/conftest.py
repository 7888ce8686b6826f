"""A real local Ray cluster and two real web replicas on it, for the `ray` tests (issue 12).

`ray start --head` on loopback (2 CPUs, a 100 MB object store, no dashboard) in a temporary
directory, then two `nn-playground` processes with NN_PLAYGROUND_BACKEND=ray on that cluster
and one SQLite database (the shards write checkpoints to it, and restore from it). Everything is
started once for the session and stopped by process group at the end.

The tests here are marked `ray`; they are deselected unless the `-m` expression names `ray`
(scripts/test.sh runs them in their own step: `pytest -m ray -p no:xdist`). Ray missing is a
failure saying what to install, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAMESPACE = "nnpg_tests"
MARKER = "NNPG_TEST_RAY_CLUSTER"  # in the environment of every process of the test cluster
RAY_MISSING = 'Ray is not installed: pip install -e ".[ray]" (scripts/test.sh\'s ray step does)'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the `ray` tests unless the -m expression asks for them."""
    if "ray" in (config.getoption("markexpr", "") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("ray") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGTERM) -> None:
    """Stop a process we started and its group (it was started in a new session)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def kill_leftovers(marker: str) -> None:
    """Kill the processes whose environment carries our cluster's marker (Ray's workers start
    their own process groups): only processes this fixture started."""
    needle = f"{MARKER}={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)


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
            [str(BIN / "nn-playground"), "--port", str(self.port)], cwd=ROOT, env=self.env,
            stdout=self.output, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                f"replica on {self.port} exited: {self.log.read_text()[-3000:]}")
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
        """The `ray` module, connected to this cluster in the test process."""
        import ray

        if not ray.is_initialized():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ray.init(address=self.address, namespace=NAMESPACE, log_to_driver=False,
                         configure_logging=False)
        return ray

    def shard_of(self, session_id: str) -> Any:
        """The shard actor that hosts a session (the directory's answer)."""
        ray = self.ray()
        found = ray.get(ray.get_actor("nnpg-directory").lookup.remote(session_id))
        assert found is not None, f"the directory does not know session {session_id}"
        return ray.get_actor(f"nnpg-shard-{found[0]}")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    """A real Ray head on loopback and two replicas on it (see the module docstring)."""
    try:
        import ray
    except ImportError:
        pytest.fail(RAY_MISSING)
    directory = Path(tempfile.mkdtemp(prefix="nnray"))  # short: Ray's socket paths are long
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", MARKER: str(directory)}
    head_log = (directory / "head.log").open("wb")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--object-store-memory=100000000",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={directory}",
         f"--dashboard-agent-listen-port={free_port()}"],
        env=env, stdout=head_log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = Cluster(f"127.0.0.1:{port}", directory)
    try:
        replica_env = {
            **env, "RAY_ADDRESS": cluster.address, "NN_PLAYGROUND_BACKEND": "ray",
            "NN_PLAYGROUND_RAY_NAMESPACE": NAMESPACE,
            "NN_PLAYGROUND_DATA_DIR": str(directory / "data"),
            "NN_PLAYGROUND_CHECKPOINT_SECONDS": "1",
            "NN_PLAYGROUND_RAY_REPLICA_TIMEOUT": "3",
            "NN_PLAYGROUND_MAX_SESSIONS_PER_OWNER": "3",
            "NN_PLAYGROUND_MAX_RUNNING_PER_OWNER": "2",
            "NN_PLAYGROUND_TRUSTED_PROXIES": '["127.0.0.1"]',
        }
        for name in ("a", "b"):
            replica = Replica(free_port(), replica_env, directory / f"replica-{name}.log")
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
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        stop_group(head, signal.SIGKILL)  # a throwaway cluster: no graceful stop needed
        head_log.close()
        kill_leftovers(str(directory))
        shutil.rmtree(directory, ignore_errors=True)


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
    header: dict[str, Any] = json.loads(message[4:4 + length])
    return header
