"""The ray backend's hot path: one plain TCP connection between each web replica and each shard.

Ray places, names and restarts the shard actors and tells a replica where a shard listens
(`Shard.endpoint()`: host, port, secret, incarnation); everything per frame and per call then
goes over this connection, not through Ray's client library. Measured before (issue 12): a
replica's event loop waited for the GIL that Ray's task submission held in the link threads
(~90 actor calls/s), /health p99 ~450-500 ms. Here the replica's side is asyncio streams on its
own event loop (app/backends/ray_backend.py), and the shard's side is this module's threads.

Wire format: every message is a 4-byte big-endian length and that many bytes.
- The replica's first message is raw bytes, `<secret> <replica name>` (nothing is unpickled
  before the secret matched); the shard answers with a pickled (incarnation, ready).
- Then replica -> shard: a pickled list of pipe messages (app/sessions/worker.py's protocol,
  plus ("track", ...)), in the replica's order; an empty list is a heartbeat.
- shard -> replica: a pickled (ready, [messages]) with everything the Worker said to that
  replica since the last one (replies, frames of the sessions it watches, job messages);
  at most one per `interval` while messages keep coming, so frames of many sessions travel
  in one batch. An empty list is a heartbeat.
Pickle is safe here only because both ends are trusted members of the same cluster: the shard
unpickles only after the replica proved it knows the secret that the shard handed to Ray, and
a replica connects only to the address the shard itself registered. Never expose a shard's
port beyond the cluster's network (docs/deploy.md).

A connection is one "replica" to ShardConn (`<name>#<n>`): when it closes (the replica died,
or the network dropped it), the shard drops that connection's subscriptions at once; a replica
that reconnects subscribes its watchers again.
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import pickle
import secrets
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.backends.ray_shard import ShardConn

HEADER = struct.Struct(">I")
HELLO_MAX = 1024  # bytes of the unauthenticated first message
MESSAGE_MAX = 1 << 30  # bytes of one authenticated message (a guard against a broken peer)
HEARTBEAT = 1.0  # s of silence after which each side sends an empty batch
SILENCE = 10.0  # s without any message after which a side takes the connection for dead
HANDSHAKE_TIMEOUT = 5.0  # s a new connection has to prove it knows the secret


def pack(data: bytes) -> bytes:
    """One wire message: the length, then the bytes."""
    return HEADER.pack(len(data)) + data


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes from a blocking socket (EOFError when the peer closed it)."""
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket, limit: int = MESSAGE_MAX) -> bytes:
    """One wire message from a blocking socket."""
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > limit:
        raise EOFError(f"a {size}-byte message is over the {limit}-byte limit")
    return recv_exactly(sock, size)


class WireServer:
    """A shard's listening socket: a thread accepts, and each connection gets a reader thread
    (the replica's messages into ShardConn, in order) and a writer thread (ShardConn's
    messages for that replica out, batched)."""

    def __init__(self, conn: ShardConn, host: str, interval: float, incarnation: str) -> None:
        self.conn = conn
        self.interval = interval
        self.incarnation = incarnation
        self.secret = secrets.token_hex(16)
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, int(self.listener.getsockname()[1])
        self.ids = itertools.count(1)
        self.connections = 0  # accepted and authenticated, so far
        self.refused = 0  # closed for a wrong secret or a broken first message
        self.batches_out = 0
        self.sockets: set[socket.socket] = set()  # authenticated connections, open
        self.thread = threading.Thread(target=self._accept, name="shard-wire-accept", daemon=True)
        self.thread.start()

    def endpoint(self) -> tuple[str, int, str, str]:
        """(host, port, secret, incarnation): what a replica needs to connect."""
        return self.host, self.port, self.secret, self.incarnation

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(
                target=self._serve, args=(sock,), name="shard-wire-read", daemon=True
            ).start()

    def _serve(self, sock: socket.socket) -> None:
        """One replica's connection: the handshake, then its messages until it closes."""
        replica = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(HANDSHAKE_TIMEOUT)
            secret, _, name = recv_message(sock, HELLO_MAX).partition(b" ")
            if not hmac.compare_digest(secret, self.secret.encode()):
                self.refused += 1
                return
            sock.settimeout(SILENCE)  # a replica sends at least a heartbeat every second
            replica = f"{name.decode(errors='replace')}#{next(self.ids)}"
            self.conn.attach(replica)
            self.connections += 1
            self.sockets.add(sock)
            sock.sendall(pack(pickle.dumps((self.incarnation, self.conn.ready))))
            threading.Thread(
                target=self._send, args=(sock, replica), name="shard-wire-write", daemon=True
            ).start()
            while True:
                messages = pickle.loads(recv_message(sock))  # trusted: see the module doc
                self.conn.incoming(replica, messages)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):
            if replica is None:
                self.refused += 1
        finally:
            self.sockets.discard(sock)
            if replica is not None:
                self.conn.detach(replica)  # its watchers go; its writer thread ends
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _send(self, sock: socket.socket, replica: str) -> None:
        """Everything for `replica`, as it comes, at most one batch per interval."""
        last = time.monotonic()
        try:
            while True:
                batch = self.conn.outgoing(replica, HEARTBEAT, touch=False)
                if batch is None:  # detached: closed, or silent past the replica timeout
                    break
                now = time.monotonic()
                if not batch and now - last < HEARTBEAT:
                    continue  # woken for another replica's messages
                if batch and now - last < self.interval:
                    time.sleep(self.interval - (now - last))  # let more join this batch
                    more = self.conn.outgoing(replica, 0.0, touch=False)
                    if more is None:
                        break
                    batch += more
                sock.sendall(pack(pickle.dumps((self.conn.ready, batch), protocol=5)))
                last = time.monotonic()
                if batch:
                    self.batches_out += 1
        except OSError:
            pass
        # The reader ends and detaches; the replica reconnects and subscribes again.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> int:
        """Cut every replica's connection, as a network failure would (tests): how many."""
        dropped = list(self.sockets)
        for sock in dropped:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(dropped)

    def close(self) -> None:
        """Stop accepting (tests)."""
        self.listener.close()
