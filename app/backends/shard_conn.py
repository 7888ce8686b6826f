"""The shard actor's pipe and mailboxes: `ShardConn` (issue 12; the shard: ray_shard.py).

The worker thread of a shard actor (app/backends/ray_shard.py) runs the same `Worker` loop as a
worker process and talks to it through `ShardConn`, the pipe's surface (poll, recv, send).
Web replicas reach the shard over a plain TCP connection each (app/backends/shard_wire.py),
whose threads hand `ShardConn` what arrives and take what goes out. Over the connection:

- a replica's pipe messages, in order; plus ("track", session_id, owner_hash, address) before a
  create (whose checkpoints these are); ("notice", session_id, message), a class's notice that
  goes on to every replica watching the session;
- everything the worker says to that replica (replies to its calls, frames of the sessions it
  watches, job messages), batched: at most one batch per `ray_pull_interval` per replica,
  however many sessions and clients.

So a frame crosses the network once per replica that watches its session, not once per client,
and the worker's flow control ("taken") is unchanged: a frame is built only once a replica's
client took the previous one. A replica that dies or disconnects watches nothing any more.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import Counter, deque
from typing import Any

REPLICA_CHECK = 1.0  # s between two looks for replicas that stopped pulling


class ShardConn:
    """The Worker loop's "pipe" inside a shard actor, and the per-replica mailboxes.

    The worker thread calls poll/recv/send as on a pipe; each replica connection's threads
    (app/backends/shard_wire.py) call `incoming` (the replica's messages) and `outgoing` (what
    to send it). Request ids are rewritten to shard-wide ones so replies go back to the replica
    that asked.
    """

    def __init__(self, replica_timeout: float) -> None:
        self.lock = threading.Lock()
        self.inbox_ready = threading.Condition(self.lock)
        self.outbox_ready = threading.Condition(self.lock)
        self.inbox: deque[tuple[Any, ...]] = deque()
        self.outboxes: dict[str, list[tuple[Any, ...]]] = {}
        self.last_pull: dict[str, float] = {}
        self.calls: dict[int, tuple[str, int, str, str]] = {}  # shard id -> (replica, id, op, sid)
        self.watchers: dict[str, Counter[str]] = {}  # session -> replica -> subscriptions
        self.owners: dict[str, tuple[str, str]] = {}  # session -> (owner hash, address)
        self.ids = itertools.count(1)
        self.ready = False
        self.replica_timeout = replica_timeout
        self.next_check = time.monotonic() + REPLICA_CHECK
        self.live: set[str] = set()  # sessions the worker hosts (as of its replies)
        self.on_checkpoint: Any = None  # (SessionCheckpoint) -> None, set by the shard
        self.on_deleted: Any = None  # (session_id) -> None
        # ---- idle sessions (the shard's janitor, ray_shard.py): unwatched pause and expiry
        self.touched: dict[str, float] = {}  # session -> when a replica last called about it
        self.unwatched_paused: set[str] = set()  # paused by the janitor: a watcher resumes it
        self.evicted: set[str] = set()  # stored and out of memory: back on their next call
        self.load: Any = None  # (session_id) -> its "restore" payload, or None (gone)
        self.on_stored: Any = None  # (session_ids, stored) -> None: tells the directory
        self.on_job: Any = None  # (job id, ended, memory) -> None: tells the directory
        self.batches_out = 0  # non-empty batches handed to a replica
        self.batches_in = 0  # batches a replica sent
        self.messages_out = 0

    # ---- the worker thread's side (a pipe) ----------------------------------------------

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether a message waits (waiting up to `timeout`), as Connection.poll."""
        with self.lock:
            if not self.inbox and timeout > 0:
                self.inbox_ready.wait(timeout)
            self._drop_silent_replicas()
            return bool(self.inbox)

    def recv(self) -> tuple[Any, ...]:
        """The next message (poll said one waits)."""
        with self.lock:
            return self.inbox.popleft()

    def send(self, message: tuple[Any, ...]) -> None:
        """Route one worker message: replies to the asking replica, frames to the watching
        ones, job messages to all, checkpoints to the database writer."""
        kind = message[0]
        if kind == "checkpoint":
            checkpoint = message[1]
            owner, address = self.owners.get(checkpoint.session_id, ("", ""))
            if self.on_checkpoint is not None:
                self.on_checkpoint(
                    dataclasses.replace(checkpoint, owner_hash=owner, address=address)
                )
            return
        if kind == "job" and self.on_job is not None:  # ends and bytes: the job budgets
            _, public, end, memory = message
            if end is not None or memory is not None:
                self.on_job(public["id"], end is not None, memory)
        with self.lock:
            if kind == "ready":
                self.ready = True
            elif kind == "reply":
                self._route_reply(message)
            elif kind == "frames":
                self._route_frames(message[1])
            else:  # "job": the replica that holds the job's record keeps it, others ignore it
                for outbox in self.outboxes.values():
                    outbox.append(message)
            self.outbox_ready.notify_all()

    def close(self) -> None:
        """Nothing to close (the pipe's surface)."""

    def _route_reply(self, message: tuple[Any, ...]) -> None:
        _, shard_id, status, payload = message
        call = self.calls.pop(shard_id, None)
        if call is None:
            return  # the shard's own call (a restore at start), or a replica that left
        replica, request_id, op, session_id = call
        if status == 200:
            if op == "subscribe":
                self.watchers.setdefault(session_id, Counter())[replica] += 1
                if session_id in self.unwatched_paused and isinstance(payload, dict):
                    # The replica plays it again within the running quota (ray_backend.py).
                    self.unwatched_paused.discard(session_id)
                    payload = {**payload, "paused_unwatched": True}
            elif op in ("create", "import", "restore"):
                self.live.add(session_id)
            elif op == "delete":
                self._deleted(session_id, replica)
        outbox = self.outboxes.get(replica)
        if outbox is not None:
            outbox.append(("reply", request_id, status, payload))

    def _deleted(self, session_id: str, by: str) -> None:
        """Other replicas' watchers of a deleted session hear of it; the stored row goes."""
        self.live.discard(session_id)
        self.owners.pop(session_id, None)
        self.touched.pop(session_id, None)
        self.unwatched_paused.discard(session_id)
        watchers = self.watchers.pop(session_id, Counter())
        for replica in watchers:
            if replica != by and replica in self.outboxes:
                self.outboxes[replica].append(("removed", session_id))
        if self.on_deleted is not None:
            self.on_deleted(session_id)

    def _route_frames(self, parts: list[tuple[str, Any]]) -> None:
        per_replica: dict[str, list[tuple[str, Any]]] = {}
        unwatched: list[str] = []
        for session_id, part in parts:
            watchers = [r for r, n in self.watchers.get(session_id, {}).items() if n > 0]
            for replica in watchers:
                per_replica.setdefault(replica, []).append((session_id, part))
            if not watchers:
                unwatched.append(session_id)  # nobody will take it: the next may be built
        for replica, batch in per_replica.items():
            outbox = self.outboxes.get(replica)
            if outbox is not None:
                outbox.append(("frames", batch))
        if unwatched:
            self.inbox.append(("taken", unwatched))

    def _drop_silent_replicas(self) -> None:
        """A replica that stopped pulling (it died) watches nothing any more."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + REPLICA_CHECK
        for replica, last in list(self.last_pull.items()):
            if now - last > self.replica_timeout:
                self._forget_replica(replica)

    def _forget_replica(self, replica: str) -> None:
        del self.last_pull[replica]
        self.outboxes.pop(replica, None)
        for shard_id in [i for i, call in self.calls.items() if call[0] == replica]:
            self.calls.pop(shard_id)  # its replies have nobody to go to
        now = time.monotonic()
        for session_id, watchers in self.watchers.items():
            for _ in range(watchers.pop(replica, 0)):
                self.inbox.append(("call", next(self.ids), "unsubscribe", session_id, None))
                self.touched[session_id] = now  # unwatched from now on

    # ---- the replicas' side (actor methods, any RPC thread) -----------------------------

    def incoming(self, replica: str, messages: list[tuple[Any, ...]]) -> None:
        """A replica's messages, in its order."""
        with self.lock:
            self._seen(replica)
            self.batches_in += 1
            for message in messages:
                kind = message[0]
                if kind == "call":
                    _, request_id, op, session_id, payload = message
                    if session_id:
                        self._touch(session_id, op)
                    shard_id = next(self.ids)
                    self.calls[shard_id] = (replica, request_id, op, session_id)
                    if op == "unsubscribe":
                        watchers = self.watchers.get(session_id)
                        if watchers is not None and watchers[replica] > 0:
                            watchers[replica] -= 1
                    if op == "restore" and session_id in self.live:
                        op = "get"  # another replica restored it first: the same answer
                    self.inbox.append(("call", shard_id, op, session_id, payload))
                elif kind == "track":
                    self.owners[message[1]] = (message[2], message[3])
                elif kind == "notice":  # to every replica watching the session
                    watchers = self.watchers.get(message[1], Counter())
                    for watcher in [r for r, n in watchers.items() if n > 0]:
                        if watcher in self.outboxes:
                            self.outboxes[watcher].append(message)
                    self.outbox_ready.notify_all()
                elif kind in ("taken", "stop"):  # "stop" ends the loop (tests; shards live on)
                    self.inbox.append(message)
            self.inbox_ready.notify()

    def _touch(self, session_id: str, op: str) -> None:
        """A replica's call about a session: it is not idle; an evicted one comes back first
        (from the database, paused: the call then finds it), as the local backend's restore
        on request."""
        self.touched[session_id] = time.monotonic()
        if op in ("command", "update"):
            self.unwatched_paused.discard(session_id)  # someone acts on it
        if session_id in self.evicted and op not in ("create", "import", "restore"):
            self.evicted.discard(session_id)
            payload = self.load(session_id) if self.load is not None else None
            if payload is not None:  # else: gone from the database too, the call says 404
                self.inbox.append(("call", next(self.ids), "restore", session_id, payload))
                self.live.add(session_id)
                if self.on_stored is not None:
                    self.on_stored([session_id], False)

    def inject(self, op: str, session_id: str, payload: Any) -> None:
        """A call of the shard itself (its restores at start); the reply is dropped."""
        with self.lock:
            self.inbox.append(("call", next(self.ids), op, session_id, payload))
            self.live.add(session_id)
            self.touched.setdefault(session_id, time.monotonic())
            self.inbox_ready.notify()

    def sweep(
        self, now: float, idle: float, unwatched: float, running: Any, busy: Any
    ) -> tuple[list[str], list[str]]:
        """The local backend's idle rules over every replica's watchers: a session nobody
        watches and no replica called for `idle` s is evicted (its last state stored, out of
        memory); a running one unwatched and uncalled for `unwatched` s (> 0) is paused, unless
        `busy(id)` (a job runs on it). `running(id)`: whether it trains. (evicted, paused)."""
        evicted, paused = [], []
        with self.lock:
            for session_id in list(self.live):
                if any(n > 0 for n in self.watchers.get(session_id, {}).values()):
                    continue
                quiet = now - self.touched.setdefault(session_id, now)
                if quiet > idle:
                    self.inbox.append(("call", next(self.ids), "evict", session_id, None))
                    self.live.discard(session_id)
                    self.evicted.add(session_id)
                    self.unwatched_paused.discard(session_id)
                    evicted.append(session_id)
                    for outbox in self.outboxes.values():  # replicas drop their handles
                        outbox.append(("evicted", session_id))
                elif (
                    unwatched > 0
                    and quiet > unwatched
                    and running(session_id)
                    and session_id not in self.unwatched_paused
                    and not busy(session_id)
                ):
                    self.inbox.append(
                        ("call", next(self.ids), "command", session_id, {"type": "pause"})
                    )
                    self.unwatched_paused.add(session_id)
                    paused.append(session_id)
            if evicted or paused:
                self.inbox_ready.notify()
                self.outbox_ready.notify_all()
        return evicted, paused

    def attach(self, replica: str) -> None:
        """A replica connected (app/backends/shard_wire.py): its mailbox opens."""
        with self.lock:
            self._seen(replica)

    def detach(self, replica: str) -> None:
        """A replica's connection closed: it watches nothing any more, at once."""
        with self.lock:
            if replica in self.last_pull:
                self._forget_replica(replica)
            self.inbox_ready.notify()
            self.outbox_ready.notify_all()  # its writer sees it is gone

    def outgoing(
        self, replica: str, wait: float, touch: bool = True
    ) -> list[tuple[Any, ...]] | None:
        """Everything for this replica since the last call (waiting up to `wait` for some);
        None once it is gone. `touch`: this call shows the replica is alive (a pull); a
        connection's writer does not (its replica's own messages and heartbeats do)."""
        with self.lock:
            if touch:
                self._seen(replica)
            elif replica not in self.outboxes:
                return None
            if not self.outboxes[replica] and wait > 0:
                self.outbox_ready.wait(wait)
                if replica not in self.outboxes:
                    return None
            if touch:
                self._seen(replica)
            batch, self.outboxes[replica] = self.outboxes[replica], []
            if batch:
                self.batches_out += 1
                self.messages_out += len(batch)
            return batch

    def _seen(self, replica: str) -> None:
        self.last_pull[replica] = time.monotonic()
        self.outboxes.setdefault(replica, [])
