"""The ray backend, a web replica's side (issue 12): shard links and the directory.

Each replica joins the Ray cluster (`ray.init(address=RAY_ADDRESS)`), gets or creates the shard
actors `nnpg-shard-0..N-1` and the directory actor `nnpg-directory` (named, detached, in the
fixed namespace `ray_namespace`, so every replica finds the same ones and they outlive the
replica that created them), and keeps one `ShardLink` per shard: a WorkerHandle (the manager's
worker link) whose "pipe" is two threads:

- a writer that pushes the queued messages to the shard as one `push` call, waiting for it, so
  the shard receives them in order (a threaded actor does not order concurrent calls);
- a reader that pulls everything the shard has for this replica as one `pull` call (a long poll),
  at most once per `ray_pull_interval`, and hands the batch to the event loop in order.

Sessions this replica never saw (created through another replica) are located through the
directory on their first request (`locate`); creates are placed by the directory, which applies
the session quotas over every replica's sessions. A shard that restarted (its process died and
Ray started it again) shows a new incarnation in the next pull: calls in flight fail with 503,
and watchers get {"type": "restored", "epoch": N} and a fresh hello, as after a worker death.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from app.backends import SessionBackend
from app.backends.ray_directory import DIRECTORY, Directory
from app.backends.ray_shard import Shard, shard_name
from app.sessions.worker_link import WorkerHandle
from app.storage.database import database_url

if TYPE_CHECKING:
    from app.sessions.manager import SessionHandle, SessionManager
    from app.settings import Settings

PULL_WAIT = 0.5  # s a pull waits at the shard for something to say (a long poll)
RETRY = 0.2  # s between two tries to reach a shard that does not answer
SHARD_CONCURRENCY = 64  # concurrent actor calls a shard serves (each replica: a push, a pull)
OWNER_SYNC = 0.5  # s between two reads of the owners other replicas registered


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - the message is the point
        raise RuntimeError(
            'NN_PLAYGROUND_BACKEND=ray needs Ray: pip install -e ".[ray]"'
        ) from None
    return ray


class ShardLink(WorkerHandle):
    """The manager's worker link to one shard actor (see the module docstring)."""

    def __init__(self, index: int, actor: Any, backend: RayBackend, manager: SessionManager):
        # Not WorkerHandle.__init__: no process and no pipe; the same surface for the manager.
        self.index = index
        self.manager = manager
        self.actor = actor
        self.backend = backend
        self.outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.sessions = 0
        self.alive = True  # a shard that restarts is the same link: it stays alive
        self.ready = False
        self.taken: set[str] = set()
        self.incarnation: str | None = None
        self.reachable = True
        self.stopping = False
        self.pulls = 0
        self.reader = threading.Thread(target=self._read, name=f"shard-{index}-pull", daemon=True)
        self.writer = threading.Thread(target=self._write, name=f"shard-{index}-push", daemon=True)
        self.reader.start()
        self.writer.start()

    def _write(self) -> None:
        """Push queued messages in order, one actor call per batch, each waited for."""
        ray = _ray()
        replica = self.backend.replica
        while True:
            message = self.outbox.get()
            batch: list[tuple[Any, ...]] = []
            while message is not None:
                batch.append(message)
                try:
                    message = self.outbox.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    ray.get(self.actor.push.remote(replica, batch))
                except Exception as error:  # the shard is down (restarting): those calls fail
                    self._fail_calls(batch, f"shard {self.index} is unavailable: {error!r}"[:200])
            if message is None:
                return

    def _fail_calls(self, batch: list[tuple[Any, ...]], detail: str) -> None:
        replies = [("reply", m[1], 503, detail) for m in batch if m[0] == "call"]
        if replies:
            with contextlib.suppress(RuntimeError):
                self.manager.loop.call_soon_threadsafe(self.manager.dispatch_all, replies)

    def _read(self) -> None:
        """Pull this replica's messages, at most once per interval, and dispatch them."""
        ray = _ray()
        replica = self.backend.replica
        interval = self.manager.settings.ray_pull_interval
        loop = self.manager.loop
        while not self.stopping:
            started = time.monotonic()
            try:
                incarnation, ready, messages = ray.get(
                    self.actor.pull.remote(replica, PULL_WAIT)
                )
            except Exception:
                if self.reachable:
                    self.reachable = False
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._unreachable)
                time.sleep(RETRY)
                continue
            self.pulls += 1
            self.reachable = True
            self.ready = bool(ready)
            if incarnation != self.incarnation:
                restarted = self.incarnation is not None
                self.incarnation = incarnation
                if restarted:
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(self._restarted)
            batch = []
            for message in messages:
                if message[0] == "removed":  # deleted through another replica
                    batch.append(("removed", message[1]))
                else:
                    batch.append(message)
            if batch:
                try:
                    loop.call_soon_threadsafe(self._dispatch, batch)
                except RuntimeError:
                    return
            left = interval - (time.monotonic() - started)
            if left > 0:
                time.sleep(left)

    def _dispatch(self, batch: list[tuple[Any, ...]]) -> None:
        for message in batch:
            if message[0] == "removed":
                self.manager.discard(message[1])
            else:
                self.manager.dispatch(message)

    def _unreachable(self) -> None:
        """Runs on the loop: the shard does not answer; calls waiting on it fail with 503."""
        manager = self.manager
        for request_id, (future, _, target) in list(manager.pending.items()):
            if target is self and not future.done():
                manager.dispatch(("reply", request_id, 503,
                                  f"shard {self.index} is restarting; try again"))

    def _restarted(self) -> None:
        """Runs on the loop: the shard is a new incarnation (restored from the database)."""
        self._unreachable()
        self.taken.clear()
        handles = [h for h in self.manager.handles.values() if h.worker is self]
        for handle in handles:
            handle.status = "paused"
            for subscriber in handle.subscribers:
                subscriber.part, subscriber.seeded = None, False
        if handles:
            self.manager.loop.create_task(self._reseed(handles))

    async def _reseed(self, handles: list[SessionHandle]) -> None:
        from app.sessions.manager import SessionCallError

        manager = self.manager
        for handle in handles:
            try:
                public = await self._get_when_back(handle.session_id)
            except SessionCallError as error:
                manager.lose(handle.session_id, f"its shard restarted and it could not be "
                             f"restored: {error.detail}")
                continue
            manager.track_status(handle, public)
            epoch = public.get("epoch", 0)
            detail = (f"the shard running this session restarted; it was restored from its "
                      f"checkpoint at epoch {epoch}, paused")
            for subscriber in list(handle.subscribers):
                subscriber.push_control({"type": "restored", "epoch": epoch, "detail": detail})
                await manager.reseed(handle, subscriber)

    async def _get_when_back(self, session_id: str) -> Any:
        from app.sessions.manager import SessionCallError

        deadline = time.monotonic() + self.manager.settings.command_timeout_seconds
        while True:
            try:
                return await self.manager.request(self, "get", session_id)
            except SessionCallError as error:
                if error.status != 503 or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(RETRY)

    def stop(self, timeout: float) -> None:
        """Leave the shard (it lives on: detached); its watchers of ours are dropped there."""
        self.stopping = True
        self.outbox.put(None)
        self.writer.join(timeout)
        self.reader.join(timeout)


class RayBackend(SessionBackend):
    """Sessions in Ray shard actors; see the module docstring."""

    name = "ray"
    shared = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replica = f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(4)}"
        self.directory: Any = None
        self.links: list[ShardLink] = []
        self.owners_seen = 0
        self.owner_sync: asyncio.Task[None] | None = None

    async def start(self, manager: SessionManager, count: int) -> list[Any]:
        await asyncio.to_thread(self._join)
        shards = await asyncio.to_thread(self._shards)
        self.links = [ShardLink(i, actor, self, manager) for i, actor in enumerate(shards)]
        await self.sync_owners(manager)
        self.owner_sync = asyncio.create_task(self._sync_owners_forever(manager))
        return list(self.links)

    async def sync_owners(self, manager: SessionManager) -> None:
        """Register the owners other replicas issued tokens to (the directory's list)."""
        owners, self.owners_seen = await self.directory.owners_since.remote(self.owners_seen)
        for owner in owners:
            manager.owners.add(owner)

    async def _sync_owners_forever(self, manager: SessionManager) -> None:
        while True:
            await asyncio.sleep(OWNER_SYNC)
            with contextlib.suppress(Exception):
                await self.sync_owners(manager)

    def _join(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(
                address=self.settings.ray_address or os.environ.get("RAY_ADDRESS") or None,
                namespace=self.settings.ray_namespace,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        self.directory = ray.remote(Directory).options(
            name=DIRECTORY, namespace=self.settings.ray_namespace, lifetime="detached",
            get_if_exists=True, num_cpus=0, max_restarts=-1,
        ).remote()

    def _shards(self) -> list[Any]:
        ray = _ray()
        settings = self.settings
        env = {k: v for k, v in os.environ.items() if k.startswith("NN_PLAYGROUND_")}
        # Every replica and shard must use the same database: an absolute URL.
        env["NN_PLAYGROUND_DATABASE_URL"] = database_url(settings)
        env["OPENBLAS_NUM_THREADS"] = "1"
        checkpoint = settings.checkpoint_seconds if settings.checkpoint_seconds > 0 else None
        actor_class = ray.remote(Shard)
        return [
            actor_class.options(
                name=shard_name(i), namespace=settings.ray_namespace, lifetime="detached",
                get_if_exists=True, max_restarts=-1, max_concurrency=SHARD_CONCURRENCY,
                num_cpus=settings.ray_shard_cpus,
            ).remote(i, settings.ray_namespace, env, checkpoint, settings.ray_replica_timeout)
            for i in range(max(1, settings.ray_shards))
        ]

    def new_worker(self, manager: SessionManager, index: int) -> Any:
        raise RuntimeError("shards are restarted by Ray, not replaced by a replica")

    def _limits(self) -> dict[str, int]:
        s = self.settings
        return {"max_sessions": s.max_sessions, "max_sessions_per_owner": s.max_sessions_per_owner,
                "max_sessions_per_address": s.max_sessions_per_address}

    async def place(
        self, manager: SessionManager, session_id: str, owner: str, address: str
    ) -> Any | None:
        shards = [link.index for link in self.links if link.reachable]
        if not shards:
            from app.sessions.manager import SessionCallError

            raise SessionCallError(503, "no shard is reachable")
        shard, refusal = await self.directory.place.remote(
            session_id, owner, address, shards, self._limits()
        )
        if refusal is not None:
            raise manager.quota_error(refusal)
        link = self.links[shard]
        link.send(("track", session_id, owner, address))  # whose checkpoints these are
        return link

    async def locate(self, manager: SessionManager, session_id: str) -> SessionHandle | None:
        found = await self.directory.lookup.remote(session_id)
        if found is None or session_id in manager.handles:
            return manager.handles.get(session_id)
        shard, owner, address = found
        link = self.links[shard]
        handle = manager.new_handle(session_id, link, owner, address)
        handle.ready = True
        if owner:
            manager.owners.add(owner)
        with contextlib.suppress(Exception):
            manager.track_status(handle, await manager.request(link, "get", session_id))
        return handle

    async def run_refusal(self, manager: SessionManager, handle: SessionHandle) -> str | None:
        """The running quotas over every shard: the sessions of this owner and of this address
        that train now, as the shards themselves see them (not as any replica last heard)."""
        settings = self.settings
        answers = await asyncio.gather(*(
            link.actor.running.remote(handle.owner, handle.address, handle.session_id)
            for link in self.links if link.reachable
        ), return_exceptions=True)
        counts = [a for a in answers if isinstance(a, tuple)]
        by_owner = sum(n for n, _ in counts)
        by_address = sum(n for _, n in counts)
        if handle.owner and by_owner >= settings.max_running_per_owner:
            return (f"this owner has {by_owner} sessions training; max_running_per_owner = "
                    f"{settings.max_running_per_owner} (pause one first)")
        if handle.address and by_address >= settings.max_running_per_address:
            return (f"address {handle.address} has {by_address} sessions training; "
                    f"max_running_per_address = {settings.max_running_per_address}")
        return None

    def released(self, session_id: str) -> None:
        if self.directory is not None:
            with contextlib.suppress(Exception):
                self.directory.release.remote(session_id)

    async def stop(self) -> None:
        if self.owner_sync is not None:
            self.owner_sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.owner_sync
        self.links = []
