"""The ray backend, a web replica's side (issue 12): shard links and the directory.

Each replica joins the Ray cluster (`ray.init(address=RAY_ADDRESS)`), gets or creates the shard
actors `nnpg-shard-0..N-1` and the directory actor `nnpg-directory` (named, detached, in the
fixed namespace `ray_namespace`, so every replica finds the same ones and they outlive the
replica that created them), and keeps one `ShardLink` per shard: a WorkerHandle (the manager's
worker link) whose "pipe" is a TCP connection to the shard (app/backends/shard_wire.py), served
by asyncio streams on this replica's event loop. The messages of one pass of the loop go out as
one batch, in order; the shard's batches (at most one per `ray_pull_interval`) are dispatched
on the loop as they arrive. No thread of ours runs Ray's client code on the hot path: Ray is
used to find or create the actors, to ask a shard for its endpoint (in a thread), and for the
directory's placement, lookups, owners and running counts (cold paths).

Sessions this replica never saw (created through another replica) are located through the
directory on their first request (`locate`); creates are placed by the directory, which applies
the session quotas over every replica's sessions. When a shard's connection drops, calls in
flight fail with 503 and the link reconnects to the endpoint Ray gives it: a shard that restarted
(its process died and Ray started it again) shows a new incarnation, and watchers get
{"type": "restored", "epoch": N} and a fresh hello, as after a worker death; the same shard
after a dropped connection gets this replica's watchers again (a fresh hello each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from app.backends import SessionBackend
from app.backends.ray_directory import DIRECTORY, Directory
from app.backends.ray_shard import Shard, shard_name
from app.backends.shard_wire import HEADER, HEARTBEAT, MESSAGE_MAX, SILENCE, pack
from app.sessions.worker_link import WorkerHandle
from app.storage.database import database_url

if TYPE_CHECKING:
    from app.sessions.manager import SessionHandle, SessionManager
    from app.settings import Settings

RETRY = 0.2  # s between two tries to reach a shard that does not answer
ENDPOINT_TIMEOUT = 30.0  # s to wait for a shard's endpoint (a restarting shard answers late)
CONNECT_TIMEOUT = 10.0  # s for a connection and its handshake
FIRST_CONNECT = 60.0  # s a starting replica waits for its first connection to each shard
SHARD_CONCURRENCY = 16  # concurrent actor calls a shard serves (endpoint, running, stats)
OWNER_SYNC = 0.5  # s between two reads of the owners other replicas registered

logger = logging.getLogger("nn_playground.backends")


async def read_message(reader: asyncio.StreamReader) -> bytes:
    """One wire message (shard_wire.py) from an asyncio stream."""
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    if size > MESSAGE_MAX:
        raise EOFError(f"a {size}-byte message is over the {MESSAGE_MAX}-byte limit")
    return await reader.readexactly(size)


def _ray() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - the message is the point
        raise RuntimeError('NN_PLAYGROUND_BACKEND=ray needs Ray: pip install -e ".[ray]"') from None
    return ray


class ShardLink(WorkerHandle):
    """The manager's worker link to one shard: a TCP connection on this replica's event loop
    (see the module docstring and app/backends/shard_wire.py)."""

    def __init__(self, index: int, actor: Any, backend: RayBackend, manager: SessionManager):
        # Not WorkerHandle.__init__: no process, no pipe, no thread; the same surface for the
        # manager. Built on the event loop; every method but send() and stop() runs there.
        self.index = index
        self.manager = manager
        self.actor = actor
        self.backend = backend
        self.runner: Any = None  # no process of ours (app/ops/metrics.py asks)
        self.sessions = 0
        self.alive = True  # a shard that restarts is the same link: it stays alive
        self.ready = False
        self.taken: set[str] = set()
        self.incarnation: str | None = None
        self.reachable = False
        self.stopping = False
        self.connected = asyncio.Event()  # the first connection is up (start waits for it)
        self.queue: list[tuple[Any, ...]] = []  # messages of this pass of the loop
        self.stream: asyncio.StreamWriter | None = None
        self.last_read = self.last_write = 0.0
        self.batches_in = 0  # batches received from the shard (the benchmark counts them)
        self.thread = threading.get_ident()  # the event loop's thread
        self.task = manager.loop.create_task(self._run())

    # ---- sending -------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue one message for the shard (from any thread; order is kept): the messages
        of one pass of the event loop go out as one batch."""
        loop = self.manager.loop
        if threading.get_ident() != self.thread:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(self.send, message)
            return
        if not self.queue:
            loop.call_soon(self._flush)
        self.queue.append(message)

    def _flush(self) -> None:
        batch, self.queue = self.queue, []
        writer = self.stream
        if writer is None or writer.is_closing():
            self._fail_calls(batch, f"shard {self.index} is not reachable; try again")
            return
        writer.write(pack(pickle.dumps(batch, protocol=5)))
        self.last_write = self.manager.loop.time()

    def _fail_calls(self, batch: list[tuple[Any, ...]], detail: str) -> None:
        for message in batch:
            if message[0] == "call":
                self.manager.dispatch(("reply", message[1], 503, detail))

    # ---- the connection ------------------------------------------------------------------

    def _endpoint(self) -> tuple[str, int, str, str]:
        """Where the shard listens (a Ray call: in a thread, off the event loop)."""
        ray = _ray()
        endpoint: tuple[str, int, str, str] = ray.get(
            self.actor.endpoint.remote(), timeout=ENDPOINT_TIMEOUT
        )
        return endpoint

    async def _run(self) -> None:
        """Connect, serve the connection until it drops, reconnect; forever."""
        loop = self.manager.loop
        while not self.stopping:
            writer = None
            try:
                host, port, secret, incarnation = await asyncio.to_thread(self._endpoint)
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT
                )
                writer.write(pack(f"{secret} {self.backend.replica}".encode()))
                # Trusted: the address the shard registered in Ray (shard_wire.py).
                incarnation, ready = pickle.loads(
                    await asyncio.wait_for(read_message(reader), CONNECT_TIMEOUT)
                )
                self.stream, self.ready = writer, bool(ready)
                self.last_read = self.last_write = loop.time()
                self._connected(incarnation)
                beat = loop.create_task(self._heartbeat(writer))
                try:
                    await self._dispatch_batches(reader)
                finally:
                    beat.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure: the shard is down (or restarting)
                logger.debug("shard %s connection: %r", self.index, error)
            finally:
                self.stream = None
                if writer is not None:
                    writer.close()
            if self.reachable:
                self.reachable = False
                self._unreachable()
            if not self.stopping:
                await asyncio.sleep(RETRY)

    def _connected(self, incarnation: str) -> None:
        """A new connection: a restarted shard's sessions are reseeded with "restored"; after
        a mere reconnect to the same shard, this replica's watchers subscribe again (the shard
        dropped them when the old connection closed)."""
        before, self.incarnation = self.incarnation, incarnation
        self.reachable = True
        self.taken.clear()
        self.connected.set()
        if before is None:
            return
        self._restarted(incarnation != before)

    async def _dispatch_batches(self, reader: asyncio.StreamReader) -> None:
        """Dispatch every batch the shard sends, in order, on the event loop."""
        manager = self.manager
        loop = manager.loop
        while True:
            ready, messages = pickle.loads(await read_message(reader))  # trusted (above)
            self.last_read = loop.time()
            self.ready = ready
            if messages:
                self.batches_in += 1
            for message in messages:
                kind = message[0]
                if kind == "removed":  # deleted through another replica
                    manager.discard(message[1])
                    continue
                if kind == "evicted":  # idle: out of the shard's memory, still placed
                    self._evicted(message[1])
                    continue
                if kind == "notice":  # a class's notice, from whichever replica made it
                    self._notice(message[1], message[2])
                    continue
                payload = message[3] if kind == "reply" else None
                if type(payload) is dict and "paused_unwatched" in payload:
                    message = self._unwatched_paused(message)
                manager.dispatch(message)

    def _evicted(self, session_id: str) -> None:
        """The shard evicted an idle session (stored, still in the directory): this replica
        forgets its handle without releasing it; its next request locates it again and the
        shard restores it from the database."""
        handle = self.manager.handles.get(session_id)
        if handle is not None and not handle.subscribers and handle.worker is self:
            del self.manager.handles[session_id]
            self.sessions -= 1

    def _notice(self, session_id: str, message: dict[str, Any]) -> None:
        handle = self.manager.handles.get(session_id)
        if handle is not None:
            for subscriber in handle.subscribers:
                subscriber.push_control(message)

    def _unwatched_paused(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """A subscribe's reply for a session the shard paused for want of watchers: the
        manager plays it again after the subscribe, within the running quota (as on the local
        backend, where the manager itself paused it)."""
        payload = dict(message[3])
        del payload["paused_unwatched"]
        handle = self.manager.handles.get(payload.get("session", {}).get("id", ""))
        if handle is not None:
            handle.paused_unwatched = True
        return (*message[:3], payload)

    async def _heartbeat(self, writer: asyncio.StreamWriter) -> None:
        """An empty batch after a second of silence; a shard silent for SILENCE is dead."""
        loop = self.manager.loop
        while True:
            await asyncio.sleep(HEARTBEAT)
            now = loop.time()
            if now - self.last_read > SILENCE:
                writer.transport.abort()  # the read fails: reconnect
                return
            if now - self.last_write >= HEARTBEAT and not self.queue:
                writer.write(pack(pickle.dumps([])))
                self.last_write = now

    def _unreachable(self) -> None:
        """Runs on the loop: the shard does not answer; calls waiting on it fail with 503."""
        manager = self.manager
        for request_id, (future, _, target) in list(manager.pending.items()):
            if target is self and not future.done():
                manager.dispatch(
                    ("reply", request_id, 503, f"shard {self.index} is restarting; try again")
                )

    def _restarted(self, restored: bool) -> None:
        """Runs on the loop: the shard is a new incarnation (`restored`: its sessions came back
        from the database, paused) or the same one after a lost connection."""
        self._unreachable()
        handles = [h for h in self.manager.handles.values() if h.worker is self]
        for handle in handles:
            if restored:
                handle.status = "paused"
            for subscriber in handle.subscribers:
                subscriber.part, subscriber.seeded = None, False
        if handles:
            self.manager.loop.create_task(self._reseed(handles, restored))

    async def _reseed(self, handles: list[SessionHandle], restored: bool) -> None:
        from app.sessions.manager import SessionCallError

        manager = self.manager
        if not restored:  # the same shard: the sessions are as they were
            for handle in handles:
                for subscriber in list(handle.subscribers):
                    await manager.reseed(handle, subscriber)
            return
        for handle in handles:
            try:
                public = await self._get_when_back(handle.session_id)
            except SessionCallError as error:
                manager.lose(
                    handle.session_id,
                    f"its shard restarted and it could not be restored: {error.detail}",
                )
                continue
            manager.track_status(handle, public)
            epoch = public.get("epoch", 0)
            detail = (
                f"the shard running this session restarted; it was restored from its "
                f"checkpoint at epoch {epoch}, paused"
            )
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
        """Leave the shard (it lives on: detached; our watchers there end with the
        connection). Called from a thread; RayBackend.stop closes the connection."""
        self.stopping = True

    async def close(self) -> None:
        """On the loop: send what is queued, close the connection, end the task."""
        self.stopping = True
        if self.queue:
            self._flush()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


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
        self.granted: dict[str, int] = {}  # session -> its run grant's generation, not landed
        self.telling: set[asyncio.Task[None]] = set()  # notices to sessions held elsewhere

    async def start(self, manager: SessionManager, count: int) -> list[Any]:
        await asyncio.to_thread(self._join)
        shards = await asyncio.to_thread(self._shards)
        self.links = [ShardLink(i, actor, self, manager) for i, actor in enumerate(shards)]
        with contextlib.suppress(TimeoutError):  # a shard that is not up yet: 503 until it is
            await asyncio.wait_for(
                asyncio.gather(*(link.connected.wait() for link in self.links)), FIRST_CONNECT
            )
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
        self.directory = (
            ray.remote(Directory)
            .options(
                name=DIRECTORY,
                namespace=self.settings.ray_namespace,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                max_restarts=-1,
                max_task_retries=-1,  # a call in flight while Ray restarts it is retried
            )
            .remote(database_url(self.settings))  # it keeps its map in the database
        )

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
                name=shard_name(i),
                namespace=settings.ray_namespace,
                lifetime="detached",
                get_if_exists=True,
                max_restarts=-1,
                max_concurrency=SHARD_CONCURRENCY,
                num_cpus=settings.ray_shard_cpus,
            ).remote(
                i,
                settings.ray_namespace,
                env,
                checkpoint,
                settings.ray_replica_timeout,
                settings.ray_pull_interval,
            )
            for i in range(max(1, settings.ray_shards))
        ]

    def new_worker(self, manager: SessionManager, index: int) -> Any:
        raise RuntimeError("shards are restarted by Ray, not replaced by a replica")

    def _limits(self) -> dict[str, int]:
        s = self.settings
        return {
            "max_sessions": s.max_sessions,
            "max_sessions_per_owner": s.max_sessions_per_owner,
            "max_sessions_per_address": s.max_sessions_per_address,
            "max_stored_sessions_per_owner": s.max_stored_sessions_per_owner,
        }

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
        """The running quotas over every replica, decided atomically by the directory: it
        grants the run (counting the runs it granted through any replica, or what the shards
        report training now, whichever is more) or refuses it (the 429 detail)."""
        settings = self.settings
        answers = await asyncio.gather(
            *(
                link.actor.running.remote(handle.owner, handle.address, handle.session_id)
                for link in self.links
                if link.reachable
            ),
            return_exceptions=True,
        )
        counts = [a for a in answers if isinstance(a, tuple)]
        on_shards = (sum(n for n, _ in counts), sum(n for _, n in counts))
        limits = {
            "max_running_per_owner": settings.max_running_per_owner,
            "max_running_per_address": settings.max_running_per_address,
        }
        stale: dict[str, int] | None = None
        while True:
            verdict, answer = await self.directory.reserve_run.remote(
                handle.session_id, handle.owner, handle.address, limits, on_shards, stale
            )
            if verdict == "granted":
                self.granted[handle.session_id] = int(answer)  # landed by run_answered
                return None
            if verdict == "refused":
                return str(answer)
            stale = await self._ended_runs(manager, answer)  # "check": at most once

    async def _ended_runs(
        self, manager: SessionManager, suspects: dict[str, tuple[int, int]]
    ) -> dict[str, int]:
        """Of the granted runs the directory suspects ended (session -> (generation, shard)),
        those whose session does not train now, asked from its shard: session -> generation."""
        from app.sessions.manager import SessionCallError

        async def ended(session_id: str, shard: int) -> bool:
            if not 0 <= shard < len(self.links):
                return True
            try:
                public = await manager.request(self.links[shard], "get", session_id)
            except SessionCallError as error:
                return error.status == 404
            return not (isinstance(public, dict) and public.get("status") == "running")

        sids = list(suspects)
        gone = await asyncio.gather(*(ended(s, suspects[s][1]) for s in sids))
        return {s: suspects[s][0] for s, g in zip(sids, gone, strict=True) if g}

    async def run_answered(self, manager: SessionManager, handle: SessionHandle) -> None:
        """The play or step that got a grant was answered: the grant has landed (the
        directory may now find it ended when the session no longer trains)."""
        generation = self.granted.pop(handle.session_id, None)
        if generation is not None:
            with contextlib.suppress(Exception):
                await self.directory.run_landed.remote(handle.session_id, generation)

    def tell(self, manager: SessionManager, session_id: str, message: dict[str, Any]) -> None:
        """Through the session's shard, which hands it to every replica watching the session
        (this one included): each pushes it to its own clients of it."""
        handle = manager.handles.get(session_id)
        if handle is not None and isinstance(handle.worker, ShardLink):
            handle.worker.send(("notice", session_id, message))
            return
        task = manager.loop.create_task(self._tell_located(manager, session_id, message))
        self.telling.add(task)
        task.add_done_callback(self.telling.discard)

    async def _tell_located(
        self, manager: SessionManager, session_id: str, message: dict[str, Any]
    ) -> None:
        """A session this replica holds no handle of: found through the directory first."""
        with contextlib.suppress(Exception):
            found = await self.directory.lookup.remote(session_id)
            if found is not None and 0 <= found[0] < len(self.links):
                self.links[found[0]].send(("notice", session_id, message))

    def released(self, session_id: str) -> None:
        if self.directory is not None:
            with contextlib.suppress(Exception):
                self.directory.release.remote(session_id)

    async def stop(self) -> None:
        if self.owner_sync is not None:
            self.owner_sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.owner_sync
        for link in self.links:
            await link.close()
        self.links = []
