"""The shard's TCP server (app/backends/shard_wire.py), without Ray: a real socket, the real
Worker loop behind a ShardConn, and a client speaking the wire format by hand.

Gold: the epoch rows the client receives (every one of 1..20, once), the worker's own
subscriber count after the client's connection closes, and what a wrong secret gets (nothing).
"""

from __future__ import annotations

import pickle
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app.backends.ray_shard import ShardConn
from app.backends.shard_wire import WireServer, pack, recv_message
from app.sessions.worker import Worker
from tests.scale.test_scale_shardconn import read_rows


@pytest.fixture
def shard() -> Iterator[tuple[ShardConn, Worker, WireServer]]:
    """A ShardConn, the Worker loop on it in a thread, and its wire server on loopback."""
    conn = ShardConn(replica_timeout=60)  # long: only a closed connection may drop a replica
    worker = Worker(conn, None)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    server = WireServer(conn, "127.0.0.1", 0.01, "incarnation-1")
    try:
        yield conn, worker, server
    finally:
        server.close()
        conn.incoming("test", [("stop",)])
        thread.join(5)


def connect(server: WireServer, name: str, secret: str | None = None) -> socket.socket:
    """A replica's connection: the handshake sent, the shard's answer checked."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(pack(f"{secret or server.secret} {name}".encode()))
    assert pickle.loads(recv_message(sock))[0] == "incarnation-1"
    return sock


def send(sock: socket.socket, messages: list[tuple[Any, ...]]) -> None:
    sock.sendall(pack(pickle.dumps(messages)))


def reader(sock: socket.socket, name: str, into: queue.Queue[tuple[str, Any]]) -> None:
    """Every batch the shard sends on `sock`, as (name, messages), until it closes."""

    def read() -> None:
        sock.settimeout(None)
        try:
            while True:
                into.put((name, pickle.loads(recv_message(sock))[1]))
        except (OSError, EOFError):
            return

    threading.Thread(target=read, daemon=True).start()


def test_a_wrong_secret_is_closed_without_an_answer(shard: tuple[Any, ...]) -> None:
    """A peer without the secret gets the connection closed, and nothing it sends is read."""
    conn, _, server = shard
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(pack(b"0" * 32 + b" intruder"))
    assert sock.recv(1) == b""  # closed, no (incarnation, ready) answer
    sock.close()
    deadline = time.monotonic() + 5
    while server.refused < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.refused == 1 and server.connections == 0
    assert not conn.outboxes  # no replica was attached


def test_frames_over_the_wire_and_a_closed_connection_stops_watching(
    shard: tuple[Any, ...],
) -> None:
    """Replica A creates and steps a session over its connection, replica B watches it over
    its own: B's batches carry every epoch row 1..20 exactly once, and A gets its two replies
    under its own ids. When B's connection closes, the worker's subscriber count of the
    session drops to 0 at once (not after the 60 s replica timeout)."""
    conn, worker, server = shard
    a, b = connect(server, "A"), connect(server, "B")
    try:
        send(a, [("call", 1, "create", "s1", {"dataset": "xor"})])
        created: list[tuple[Any, ...]] = []
        while not created:  # the create first (B's connection is served by another thread)
            created = pickle.loads(recv_message(a))[1]  # or an empty heartbeat
        assert [m[:3] for m in created] == [("reply", 1, 200)]
        send(b, [("call", 1, "subscribe", "s1", None)])
        send(a, [("call", 2, "command", "s1", {"type": "step", "n": 20})])
        batches: queue.Queue[tuple[str, Any]] = queue.Queue()
        reader(a, "A", batches)
        reader(b, "B", batches)
        replies: dict[str, list[int]] = {"A": [1], "B": []}

        def next_batch() -> list[tuple[str, Any]]:
            try:
                return [batches.get(timeout=0.1)]
            except queue.Empty:
                return []

        rows = read_rows(next_batch, lambda taken: send(b, [("taken", taken)]), replies, 20)
        assert replies == {"A": [1, 2], "B": [1]}
        assert sorted(rows) == list(range(1, 21))
        assert worker.runners["s1"].subscribers == 1
    finally:
        b.close()
    deadline = time.monotonic() + 5
    while worker.runners["s1"].subscribers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.runners["s1"].subscribers == 0  # within 5 s: well before the 60 s timeout
    assert sorted(name.split("#")[0] for name in conn.outboxes) == ["A"]
    a.close()
