"""The Ray side of the ray backend: shard actors (issue 12).

A shard actor hosts many sessions by running the same `Worker` loop as a worker process
(app/sessions/worker.py), in a thread of the actor, fed through `ShardConn` (the pipe's surface:
poll, recv, send) instead of a pipe. Web replicas reach it over a plain TCP connection each
(app/backends/shard_wire.py): Ray only creates, names, places and restarts the actor, and its
`endpoint()` method tells a replica where to connect. Over the connection:

- a replica's pipe messages, in order; plus ("track", session_id, owner_hash, address) before a
  create (whose checkpoints these are); ("notice", session_id, message), a class's notice that
  goes on to every replica watching the session;
- everything the worker says to that replica (replies to its calls, frames of the sessions it
  watches, job messages), batched: at most one batch per `ray_pull_interval` per replica,
  however many sessions and clients.

So a frame crosses the network once per replica that watches its session, not once per client,
and the worker's flow control ("taken") is unchanged: a frame is built only once a replica's
client took the previous one. Checkpoints never leave the shard: it writes them to the database
itself (app/storage/writer.py), so a replica that dies loses nothing (and its connection's
subscriptions end when the connection closes). Ray restarts a shard whose process died
(`max_restarts=-1`); the new incarnation asks the directory which sessions it had and restores
each from its last database checkpoint, paused; replicas lose their connection, reconnect to the
new endpoint, see the new incarnation and reseed their watchers ("restored", then a fresh hello).

The directory actor (`Directory`, app/backends/ray_directory.py) is the session -> shard map
plus each session's owner hash and address: placement and the session quotas are decided there,
over every replica's sessions.

The classes are plain Python; app/backends/ray_backend.py wraps them with `ray.remote`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from app.backends.ray_directory import DIRECTORY

SHARD = "nnpg-shard-{}"
REPLICA_CHECK = 1.0  # s between two looks for replicas that stopped pulling


def shard_name(index: int) -> str:
    """The Ray actor name of shard `index`."""
    return SHARD.format(index)


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
        # ---- idle sessions (Janitor below): the local backend's unwatched pause and expiry
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


class JobReports:
    """What a shard's worker says of its jobs, for the directory's job budgets
    (app/sessions/job_budgets.py): job ends and the bytes races and replays hold, sent by a
    thread of their own (never the worker's) as one fire-and-forget `Directory.reported` call
    per batch, right away (a job's end frees its owner's slot for every replica, even when the
    replica that started it died). A new incarnation first tells the directory it started:
    the jobs, races and replays of the one before are gone."""

    def __init__(self, index: int, namespace: str) -> None:
        self.index, self.namespace = index, namespace
        self.lock = threading.Condition()
        self.ended: list[str] = []
        self.memory: dict[tuple[str, str], tuple[int, bool]] = {}  # (kind, key) -> bytes, final
        self.directory: Any = None
        self.sent = 0
        threading.Thread(target=self._run, name=f"shard-{index}-jobs", daemon=True).start()

    def add(self, job_id: str, ended: bool, memory: tuple[str, str, int] | None) -> None:
        """One job message (the worker thread: it only queues)."""
        with self.lock:
            if ended:
                self.ended.append(job_id)
            if memory is not None:
                kind, key, nbytes = memory
                final = ended or self.memory.get((kind, key), (0, False))[1]
                self.memory[(kind, key)] = (nbytes, final)
            self.lock.notify()

    def find(self) -> Any:
        """The directory actor (waiting for it: a thread of its own)."""
        import ray

        while self.directory is None:
            try:
                self.directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            except Exception:
                time.sleep(0.2)
        return self.directory

    def started(self) -> None:
        """Tell the directory this incarnation started (the shard's constructor, before any
        replica can reach it; submitted, not waited for: no deadlock). No directory yet: a
        first start, nothing to forget."""
        import ray

        with contextlib.suppress(Exception):
            self.directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            self.directory.shard_started.remote(self.index)

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.ended and not self.memory:
                    self.lock.wait()
                ended, self.ended = self.ended, []
                memory = [(k, key, n, f) for (k, key), (n, f) in self.memory.items()]
                self.memory = {}
            with contextlib.suppress(Exception):
                self.find().reported.remote(self.index, ended, memory)
                self.sent += 1


class Shard:
    """A shard actor: one Worker loop (a thread) hosting many sessions; see the module doc."""

    def __init__(
        self,
        index: int,
        namespace: str,
        env: dict[str, str],
        checkpoint_seconds: float | None,
        replica_timeout: float,
        interval: float = 0.01,
    ) -> None:
        os.environ.update(env)  # the replicas' NN_PLAYGROUND_* settings, database URL included
        # Training is batch work: as a worker process, a shard yields the CPU to the web
        # replicas on the same node (their event loops answer /health and send frames).
        from app.sessions.worker import WORKER_NICE

        with contextlib.suppress(OSError):
            os.nice(WORKER_NICE)
        from app.settings import get_settings

        get_settings.cache_clear()
        self.index, self.namespace = index, namespace
        self.incarnation = secrets.token_hex(6)  # a restarted shard is a new incarnation
        self.started = time.time()
        self.conn = ShardConn(replica_timeout)
        self.checkpoint_seconds = checkpoint_seconds
        self.writer: Any = None
        self.storage: Any = None
        self.restored = 0
        if checkpoint_seconds:
            from app.storage import Storage
            from app.storage.writer import CheckpointWriter

            self.storage = Storage(get_settings())
            self.writer = CheckpointWriter(self.storage)
            self.writer.on_dropped = lambda sid: self.conn.inject("checkpoint_whole", sid, None)
            self.conn.on_checkpoint = self.writer.submit
            self.conn.on_deleted = self.writer.delete
            self._restore_own()
        from app.sessions.worker import Worker

        self.worker = Worker(self.conn, checkpoint_seconds)  # type: ignore[arg-type]
        settings = get_settings()
        self.idle_seconds = settings.session_idle_seconds
        self.unwatched_seconds = settings.unwatched_pause_seconds
        self.evictions = self.unwatched_pauses = 0
        if self.storage is not None:  # without checkpoints an evicted session would be lost
            self.conn.load = self._load
            self.conn.on_stored = self._stored
            threading.Thread(
                target=self._janitor, name=f"shard-{index}-janitor", daemon=True
            ).start()
        self.budgets = JobReports(index, namespace)  # job ends and bytes -> the directory
        self.budgets.started()
        self.conn.on_job = self.budgets.add
        self.thread = threading.Thread(target=self._serve, name=f"shard-{index}", daemon=True)
        self.thread.start()
        import ray.util

        from app.backends.shard_wire import WireServer

        # Typed here: the call is untyped when Ray is installed, Any when it is not (mypy).
        node_address: Callable[[], str] = ray.util.get_node_ip_address
        host = node_address()
        self.wire = WireServer(self.conn, host, interval, self.incarnation)

    def _restore_own(self) -> None:
        """After a restart: the sessions the directory places here come back from the
        database, paused (a first start finds none)."""
        import ray

        from app.sessions.restore import restore_payload

        with contextlib.suppress(ValueError):  # no directory yet: a first start
            directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            own: list[str] = ray.get(directory.sessions_on.remote(self.index))
            for session_id in own:
                stored = self.storage.load_session(session_id)
                if stored is None:
                    continue
                self.conn.owners[session_id] = (stored.owner_hash, stored.address)
                if stored.state == "stored":  # evicted for idleness: back on its next call
                    self.conn.evicted.add(session_id)
                    continue
                self.conn.inject("restore", session_id, restore_payload(stored))
                self.restored += 1

    def _load(self, session_id: str) -> Any:
        """An evicted session's "restore" payload from the database (None: gone)."""
        from app.sessions.restore import restore_payload

        stored = self.storage.load_session(session_id)
        if stored is None:
            return None
        self.conn.owners[session_id] = (stored.owner_hash, stored.address)
        return restore_payload(stored)

    def _stored(self, session_ids: list[str], stored: bool) -> None:
        """Tell the directory which sessions are out of memory (they count towards
        max_stored_sessions_per_owner only) or back (an actor call, not waited for)."""
        import ray

        with contextlib.suppress(Exception):
            directory = ray.get_actor(DIRECTORY, namespace=self.namespace)
            directory.set_stored.remote(session_ids, stored)

    def _janitor(self) -> None:
        """The local backend's idle rules, here where every replica's watchers are known:
        ShardConn.sweep every few seconds."""
        idle, unwatched = self.idle_seconds, self.unwatched_seconds
        period = min(5.0, max(0.05, (min(idle, unwatched) if unwatched > 0 else idle) / 4))
        while True:
            time.sleep(period)
            with contextlib.suppress(Exception):  # a janitor that dies would expire nothing
                self._sweep(time.monotonic())

    def _sweep(self, now: float) -> tuple[list[str], list[str]]:
        runners, jobs = self.worker.runners, self.worker.jobs

        def running(session_id: str) -> bool:
            runner = runners.get(session_id)
            return runner is not None and bool(runner.session.is_training)

        def busy(session_id: str) -> bool:
            return any(j.target == session_id and j.state == "running" for j in list(jobs.values()))

        evicted, paused = self.conn.sweep(
            now, self.idle_seconds, self.unwatched_seconds, running, busy
        )
        self.evictions += len(evicted)
        self.unwatched_pauses += len(paused)
        if evicted:
            self._stored(evicted, True)
        for session_id in evicted:  # after its last checkpoint (the evict writes one)
            self.writer.after(session_id, lambda s=session_id: self.storage.set_state(s, "stored"))
        return evicted, paused

    def _serve(self) -> None:
        from app.engine import fast

        with contextlib.suppress(Exception):  # no fast path just means the numpy path
            fast.warm_up()
        self.worker.serve_forever()

    # ---- actor methods ----

    def endpoint(self) -> tuple[str, int, str, str]:
        """(host, port, secret, incarnation): where replicas connect (shard_wire.py)."""
        return self.wire.endpoint()

    def report_jobs(self) -> None:
        """Tell the directory (restarted: it asks) which jobs run here (Directory.jobs_running),
        not waiting for it."""
        jobs = [
            (job.id, job.kind, job.target)
            for job in list(self.worker.jobs.values())
            if job.state == "running" and job.kind in ("race_step", "replay", "step")
        ]
        with contextlib.suppress(Exception):
            self.budgets.find().jobs_running.remote(self.index, jobs)

    def running(self, owner: str, address: str, besides: str) -> tuple[int, int]:
        """How many sessions of `owner` and of `address` train here now (`besides` not
        counted): the running quotas, from the sessions' own state."""
        by_owner = by_address = 0
        for session_id, runner in list(self.worker.runners.items()):
            if session_id == besides or not runner.session.is_training:
                continue
            who, where = self.conn.owners.get(session_id, ("", ""))
            by_owner += bool(owner) and who == owner
            by_address += bool(address) and where == address
        return by_owner, by_address

    def stats(self) -> dict[str, Any]:
        """What this shard hosts and how it is pulled (for tests and the benchmark)."""
        with self.conn.lock:
            return {
                "index": self.index,
                "incarnation": self.incarnation,
                "pid": os.getpid(),
                "sessions": len(self.conn.live),
                "replicas": sorted(self.conn.last_pull),
                "batches_in": self.conn.batches_in,
                "batches_out": self.conn.batches_out,
                "messages_out": self.conn.messages_out,
                "connections": self.wire.connections,
                "refused": self.wire.refused,
                "restored": self.restored,
                "job_reports": self.budgets.sent,
                "ready": self.conn.ready,
                "evictions": self.evictions,
                "unwatched_pauses": self.unwatched_pauses,
                "evicted": sorted(self.conn.evicted),
                "cpu_seconds": time.process_time(),
            }

    def sweep(self, ahead: float) -> tuple[list[str], list[str]]:
        """The janitor's pass as if `ahead` more seconds had passed (tests): (evicted, paused).
        Without checkpoints there is no janitor (an evicted session would be lost)."""
        if self.storage is None:
            return [], []
        return self._sweep(time.monotonic() + ahead)

    def drop_connections(self) -> int:
        """Cut every replica's connection (tests: a network failure); how many were cut."""
        return self.wire.drop()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every checkpoint handed to the writer is written (tests)."""
        return self.writer.flush(timeout) if self.writer is not None else True
