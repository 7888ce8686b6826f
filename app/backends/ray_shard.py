"""The Ray side of the ray backend: shard actors (issue 12).

A shard actor hosts many sessions by running the same `Worker` loop as a worker process
(app/sessions/worker.py), in a thread of the actor, fed through `ShardConn` (the pipe's surface
and the per-replica mailboxes: app/backends/shard_conn.py) instead of a pipe. Web replicas reach
it over a plain TCP connection each (app/backends/shard_wire.py): Ray only creates, names, places
and restarts the actor, and its `endpoint()` method tells a replica where to connect.

Checkpoints never leave the shard: it writes them to the database itself
(app/storage/writer.py), so a replica that dies loses nothing (and its connection's
subscriptions end when the connection closes). Ray restarts a shard whose process died
(`max_restarts=-1`); the new incarnation asks the directory which sessions it had and restores
each from its last database checkpoint, paused; replicas lose their connection, reconnect to the
new endpoint, see the new incarnation and reseed their watchers ("restored", then a fresh hello).
Job ends and the bytes races and replays hold go to the directory (`JobReports`:
app/backends/shard_reports.py).

The directory actor (`Directory`, app/backends/ray_directory.py) is the session -> shard map
plus each session's owner hash and address: placement and the session quotas are decided there,
over every replica's sessions.

The classes are plain Python; app/backends/ray_backend.py wraps them with `ray.remote`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from app.backends.ray_directory import DIRECTORY
from app.backends.shard_conn import ShardConn as ShardConn  # re-exported: shard_wire.py, tests
from app.backends.shard_reports import JobReports

SHARD = "nnpg-shard-{}"
SWITCH_INTERVAL = 0.02  # s: how long the training thread may keep the GIL (see Shard)


def shard_name(index: int) -> str:
    """The Ray actor name of shard `index`."""
    return SHARD.format(index)


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
        # A worker process has one thread; a shard's training thread shares the GIL with its
        # wire, checkpoint and report threads, each of which, waking, makes it hand the GIL
        # over within the switch interval (5 ms by default). A longer interval lets it
        # train on: the others wait at most SWITCH_INTERVAL (far below a frame's 33 ms).
        sys.setswitchinterval(SWITCH_INTERVAL)
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
