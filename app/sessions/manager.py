"""The web process's side of the sessions: handles (app/sessions/handles.py), owners and quotas.

Every session lives in exactly one worker (app/sessions/worker.py); REST routes and websockets
both reach it through `SessionManager.call`, so they always see the same state. A reader thread
per worker receives replies and frames and hands them to the event loop with
`call_soon_threadsafe`, in pipe order; frames go into a latest-frame-wins slot per subscriber
(epoch rows merged, never dropped), so a slow client costs one slot, not a queue. When a
client's sender takes a frame from its slot, the worker is told ("taken", batched per pass of
the event loop): it builds a session's next frame only then (flow control, worker.py).

With a database (issue 10, app/sessions/restore.py): workers checkpoint their sessions; a dead
worker's sessions come back on a fresh one (a warmed standby process takes its place at once),
a server start brings back every live session, idle expiry stores a session instead of deleting
it, and `ensure` restores a stored one on its next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.api.owners import OwnerRegistry, hashes_match, token_hash
from app.backends import SessionBackend, backend_for
from app.ops import events
from app.sessions.bodies import RAW
from app.sessions.frames import FramePart
from app.sessions.handles import SessionCallError as SessionCallError
from app.sessions.handles import SessionHandle as SessionHandle
from app.sessions.handles import Subscriber as Subscriber
from app.sessions.jobs import JobBoard
from app.sessions.worker_link import WorkerHandle
from app.settings import Settings
from app.storage import SessionCheckpoint, Storage

if TYPE_CHECKING:
    from app.sessions.restore import Persistence

logger = logging.getLogger("nn_playground.sessions")

STANDBY_DELAY = 3.0  # seconds after start before the spare worker process starts


class SessionManager:
    """Creates sessions on the least-loaded worker and routes every call and frame."""

    def __init__(
        self,
        settings: Settings,
        owners: OwnerRegistry | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings
        # Where sessions live (app/backends): local worker processes, or Ray shard actors.
        self.backend: SessionBackend = backend_for(settings)
        self.storage = storage  # the database (app/storage); None: sessions live in memory only
        # Sessions that last (restore.py): None without storage or with checkpoint_seconds <= 0.
        self.persistence: Persistence | None = None
        self.standby: WorkerHandle | None = None  # a warmed spare that replaces a dead worker
        self.owners = owners if owners is not None else OwnerRegistry(settings.max_owners)
        self.owners.holders.append(self.owner_in_use)
        # ---- jobs (app/sessions/jobs.py): races, replays and long steps in the workers ----
        self.jobs = JobBoard(self)
        self.owners.holders.append(self.jobs.owner_in_use)
        self.handles: dict[str, SessionHandle] = {}
        self.counters: Counter[str] = Counter()  # events for /metrics (app/ops/events.py)
        self.workers: list[WorkerHandle] = []
        self.pending: dict[
            int, tuple[asyncio.Future[Any], Callable[[Any], None] | None, WorkerHandle]
        ] = {}
        self.stopping = False
        self.use_processes = True
        self.request_ids = itertools.count(1)
        self.janitor: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the manager was started on."""
        assert self._loop is not None, "SessionManager.start() was not called"
        return self._loop

    async def start(self) -> None:
        """Start the workers and the idle-session janitor."""
        self._loop = asyncio.get_running_loop()
        # Workers inherit the environment: one BLAS thread each (RECIPES: 2 shared cores).
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        count = self.settings.worker_processes
        if count is None:
            count = os.cpu_count() or 1
        self.use_processes = count > 0
        shared = self.backend.shared  # replicas share sessions: the hosts persist them
        if not shared and self.storage is not None and self.settings.checkpoint_seconds > 0:
            from app.sessions.restore import Persistence  # imports the storage writer

            self.persistence = Persistence(self, self.storage)
        self.workers = await self.backend.start(self, count)
        # The spare starts once the workers had their start (two cold starts at once on a
        # loaded machine delayed the first create past a client's 5 s timeout).
        self.loop.call_later(STANDBY_DELAY, self._start_standby)
        if self.persistence is not None:
            await self.persistence.start()  # every live session back, paused
        if not shared:  # a replica of a shared backend must not expire what others watch
            self.janitor = asyncio.create_task(self._expire_idle())

    @property
    def checkpoint_seconds(self) -> float | None:
        """The workers' checkpoint period (None: no checkpoints)."""
        return self.settings.checkpoint_seconds if self.persistence is not None else None

    def _start_standby(self) -> None:
        """A spare worker process, started (and warmed) ahead: a crashed worker's sessions come
        back within ~0.1 s instead of waiting ~2.5 s for a new process to import and warm up."""
        if (
            self.use_processes and self.settings.standby_worker and not self.stopping
            and self.standby is None and self.workers and not self.backend.shared
        ):
            self.standby = self.backend.new_worker(self, len(self.workers))

    def on_checkpoint(self, checkpoint: SessionCheckpoint) -> None:
        """Runs in a pipe's reader thread: a worker's checkpoint goes to the storage's writer."""
        if self.persistence is not None:
            self.persistence.on_checkpoint(checkpoint)

    async def stop(self) -> None:
        """Tell subscribers, stop the janitor and the workers, fail pending calls."""
        self.stopping = True
        if self.janitor is not None:
            self.janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.janitor
        for handle in self.handles.values():
            for subscriber in handle.subscribers:
                subscriber.closing = True
                subscriber.event.set()
        workers, self.workers = self.workers, []
        if self.standby is not None:
            workers.append(self.standby)
            self.standby = None

        def stop_all() -> None:
            for worker in workers:
                worker.stop(5.0)  # a stopping worker sends its sessions' last checkpoints

        await asyncio.to_thread(stop_all)
        await self.backend.stop()
        if self.persistence is not None:
            await self.persistence.stop()  # every checkpoint handed over is written
        for future, _, _ in self.pending.values():
            if not future.done():
                future.set_exception(SessionCallError(503, "the server is shutting down"))
        self.pending.clear()
        self.handles.clear()

    # ---- calls -----------------------------------------------------------------------------

    def dispatch_all(self, messages: list[tuple[Any, ...]]) -> None:
        """Runs on the event loop for a batch of worker messages, in pipe order."""
        for message in messages:
            self.dispatch(message)

    def dispatch(self, message: tuple[Any, ...]) -> None:
        """Runs on the event loop for every worker message, in pipe order."""
        if message[0] == "reply":
            _, request_id, status, payload = message
            entry = self.pending.pop(request_id, None)
            if entry is None:
                return
            future, on_reply, _ = entry
            if future.done():
                return
            if status == 200:
                if on_reply is not None:
                    on_reply(payload)
                future.set_result(payload)
            else:
                future.set_exception(SessionCallError(status, payload, self._headers(status)))
        elif message[0] == "frames":
            for session_id, part in message[1]:
                self._offer(session_id, part)
        elif message[0] == "job":  # a job's progress or end (app/sessions/jobs.py)
            self.jobs.on_message(message)

    def _offer(self, session_id: str, part: FramePart) -> None:
        """Put a frame into the slot of every subscriber of the session."""
        handle = self.handles.get(session_id)
        if handle is None:
            return
        accepted = False
        self.counters["frames_merged"] += sum(  # a newer frame merges into the slot
            s.seeded and s.part is not None for s in handle.subscribers
        )
        for subscriber in handle.subscribers:
            accepted |= subscriber.offer(
                part, self.settings.max_pending_epochs, self.settings.max_pending_lockstep_bytes
            )
        if not accepted:  # no client will take it: let the worker send the next one
            handle.worker.tell_taken(session_id)

    def worker_lost(self, worker: WorkerHandle) -> None:
        """A worker's pipe closed: its calls fail (503), a fresh worker takes its place, and its
        sessions come back there from their last checkpoints (without a database: lost)."""
        worker.alive = False
        if worker is self.standby:  # the spare itself died: start another
            self.standby = None
            if not self.stopping:
                self.loop.call_later(STANDBY_DELAY, self._start_standby)
            return
        if not self.stopping:
            events.worker_lost(self, worker)  # count the restart, log it (app/ops)
        for request_id, (future, _, target) in list(self.pending.items()):
            if target is worker and not future.done():
                future.set_exception(SessionCallError(503, f"worker {worker.index} stopped"))
                del self.pending[request_id]
        fresh: WorkerHandle | None = None
        if not self.stopping and worker in self.workers:
            # A crashed worker (e.g. killed for memory) is replaced, so capacity comes back:
            # by the warmed standby when there is one (then a new standby starts).
            fresh, self.standby = self.standby, None
            if fresh is None or not fresh.alive:
                fresh = self.backend.new_worker(self, worker.index)
            fresh.index = worker.index
            self.workers[self.workers.index(worker)] = fresh
            # A new spare, once the restores below had the CPU.
            self.loop.call_later(STANDBY_DELAY, self._start_standby)
        orphans = [h for h in self.handles.values() if h.worker is worker]
        if fresh is None or self.persistence is None:
            for handle in orphans:
                # Not a delete: watchers get {"type": "lost"} and close code 1011 (stream.py).
                self.lose(handle.session_id,
                          f"worker {worker.index} stopped; the session is lost")
            return
        for handle in orphans:
            worker.sessions -= 1
            handle.ready = False  # not idle while it is being restored
            # Calls to it wait for its restore (ensure) instead of failing on the dead worker.
            self.persistence.restoring.setdefault(handle.session_id, self.loop.create_future())
            for subscriber in handle.subscribers:
                # Frames of the dead worker are moot: the restored hello frame replaces them.
                subscriber.part, subscriber.seeded = None, False
        if orphans:
            self.loop.create_task(self.persistence.recover(orphans, self._restore_target(fresh)))

    def _restore_target(self, fresh: WorkerHandle) -> WorkerHandle:
        """Where a dead worker's sessions go: the fresh worker if it is warm (the standby),
        else the idlest warm one (a new process needs seconds to start), else the fresh one."""
        if fresh.ready:
            return fresh
        warm = [w for w in self.workers if w.alive and w.ready]
        return min(warm, key=lambda w: w.sessions) if warm else fresh

    async def ensure(self, session_id: str) -> SessionHandle:
        """The handle of a live session, restoring a stored one first (404 when unknown).

        A session whose worker died waits here for its restore. Cheap for a live session and
        for an unknown id (no database call: stored ids are known in memory).
        """
        persistence = self.persistence
        if persistence is not None:
            pending = persistence.restoring.get(session_id)
            if pending is not None:
                await asyncio.shield(pending)
            elif session_id not in self.handles and session_id in persistence.stored:
                if len(self.handles) >= self.settings.max_sessions:
                    raise self.quota_error(f"{len(self.handles)} sessions are live; "
                                           f"max_sessions = {self.settings.max_sessions}")
                await persistence.restore_stored(session_id, reason="request")
        if session_id not in self.handles and self.backend.shared:
            await self.backend.locate(self, session_id)  # created through another replica
        return self.get(session_id)

    def get(self, session_id: str) -> SessionHandle:
        """The handle of a live session, or 404."""
        handle = self.handles.get(session_id)
        if handle is None:
            raise SessionCallError(404, f"session {session_id!r} not found")
        handle.last_active = time.monotonic()
        return handle

    async def request(
        self, worker: WorkerHandle, op: str, session_id: str, payload: Any = None
    ) -> Any:
        """One operation on a worker, answered (restore.py's restores and evictions)."""
        return await self._request(worker, op, session_id, payload)

    async def _request(
        self,
        worker: WorkerHandle,
        op: str,
        session_id: str,
        payload: Any = None,
        on_reply: Callable[[Any], None] | None = None,
    ) -> Any:
        if not worker.alive:
            raise SessionCallError(503, f"worker {worker.index} is not running")
        request_id = next(self.request_ids)
        future: asyncio.Future[Any] = self.loop.create_future()
        self.pending[request_id] = (future, on_reply, worker)
        try:
            worker.send(("call", request_id, op, session_id, payload))
            return await asyncio.wait_for(future, self.settings.command_timeout_seconds)
        except TimeoutError:
            raise SessionCallError(
                504, f"{op} on session {session_id!r} took longer than "
                f"command_timeout_seconds = {self.settings.command_timeout_seconds}"
            ) from None
        finally:
            self.pending.pop(request_id, None)

    async def call(self, session_id: str, op: str, payload: Any = None) -> Any:
        """Run one operation on a session in its worker and return the worker's answer.

        A command that may start training (play, step; a raw REST command's type is only known
        in the worker) carries "run_quota" when the owner or address is at its running quota:
        the worker then refuses it with 429 unless the session is already training.
        A stored session is restored first (ensure).
        """
        handle = await self.ensure(session_id)
        starts = op == "command" and isinstance(payload, dict) and (
            RAW in payload or payload.get("type") in ("play", "step")
        )
        if op in ("command", "update"):
            handle.paused_unwatched = False  # someone acts on it: the manager's pause is over
        if not starts:
            result = await self._request(handle.worker, op, session_id, payload)
            self._track(handle, result)
            return result
        # Counted as running while in flight, so concurrent plays cannot all pass the quota.
        handle.starting += 1
        try:
            refusal = await self._run_refusal(handle)
            if refusal is not None:
                payload = {**payload, "run_quota": refusal}
            try:
                result = await self._request(handle.worker, op, session_id, payload)
            finally:
                if refusal is None:  # a shared backend's grant has landed: before the reply
                    await self.backend.run_answered(self, handle)
        finally:
            handle.starting -= 1
        self._track(handle, result)
        return result

    async def call_worker(self, worker: WorkerHandle, op: str, payload: Any = None) -> Any:
        """An operation on a worker itself, about no one session (the classroom's tiles)."""
        return await self._request(worker, op, "", payload)

    # ---- owners and quotas -----------------------------------------------------------------

    def owner_of(self, session_id: str) -> str:
        """The token hash of the session's owner (404 when there is no such session)."""
        handle = self.handles.get(session_id)
        if handle is None:
            raise SessionCallError(404, f"session {session_id!r} not found")
        return handle.owner

    def authorize(self, session_id: str, token: str | None) -> bool:
        """Whether `token` is the owner token of this live session (constant-time compare)."""
        handle = self.handles.get(session_id)
        if handle is None or not token:
            return False
        return hashes_match(token_hash(token), handle.owner)

    def owner_in_use(self, owner: str) -> bool:
        """Whether the owner still has a live or stored session (the registry keeps them)."""
        stored = self.persistence is not None and owner in self.persistence.stored_owners
        return stored or any(h.owner == owner for h in self.handles.values())

    def sessions_of(self, owner: str) -> list[str]:
        """The ids of the owner's live sessions, oldest first."""
        return [s for s, h in self.handles.items() if owner and h.owner == owner]

    def quota_error(self, detail: str) -> SessionCallError:
        """A 429 naming the limit, with a Retry-After of quota_retry_after_seconds."""
        return SessionCallError(429, detail, self._headers(429))

    def _headers(self, status: int) -> dict[str, str] | None:
        if status != 429:
            return None
        return {"Retry-After": str(self.settings.quota_retry_after_seconds)}

    def _check_session_quotas(self, owner: str, address: str) -> None:
        settings = self.settings
        owned = sum(h.owner == owner for h in self.handles.values()) if owner else 0
        if owner and owned >= settings.max_sessions_per_owner:
            raise self.quota_error(
                f"this owner has {owned} live sessions; max_sessions_per_owner = "
                f"{settings.max_sessions_per_owner} (delete one, or wait for one to expire)"
            )
        stored = self.persistence.stored_owners.get(owner, 0) if self.persistence else 0
        if owner and owned + stored >= settings.max_stored_sessions_per_owner:
            raise self.quota_error(
                f"this owner has {owned} live and {stored} stored sessions; "
                f"max_stored_sessions_per_owner = {settings.max_stored_sessions_per_owner} "
                "(delete one)"
            )
        from_address = sum(h.address == address for h in self.handles.values())
        if address and from_address >= settings.max_sessions_per_address:
            raise self.quota_error(
                f"address {address} has {from_address} live sessions; "
                f"max_sessions_per_address = {settings.max_sessions_per_address}"
            )

    def _running(self, handle: SessionHandle) -> tuple[list[SessionHandle], list[SessionHandle]]:
        """The other sessions of the same owner and of the same address that train now."""
        others = [
            h for h in self.handles.values()
            if h is not handle and (h.status == "running" or h.starting)
        ]
        return (
            [h for h in others if handle.owner and h.owner == handle.owner],
            [h for h in others if handle.address and h.address == handle.address],
        )

    async def _run_refusal(self, handle: SessionHandle) -> str | None:
        """The 429 detail if one more running session would pass a running quota, else None."""
        if self.backend.shared:  # counted where every replica's sessions train (app/backends)
            return await self.backend.run_refusal(self, handle)
        settings = self.settings
        by_owner, by_address = self._running(handle)
        if (
            len(by_owner) < settings.max_running_per_owner
            and len(by_address) < settings.max_running_per_address
        ):
            return None
        # Statuses are as of the last reply: a run may have ended since (budget, a step done).
        for other in {*by_owner, *by_address}:
            with contextlib.suppress(SessionCallError):
                self._track(other, await self._request(other.worker, "get", other.session_id))
        by_owner, by_address = self._running(handle)
        if len(by_owner) >= settings.max_running_per_owner:
            return (
                f"this owner has {len(by_owner)} sessions training; max_running_per_owner = "
                f"{settings.max_running_per_owner} (pause one first)"
            )
        if len(by_address) >= settings.max_running_per_address:
            return (
                f"address {handle.address} has {len(by_address)} sessions training; "
                f"max_running_per_address = {settings.max_running_per_address}"
            )
        return None

    def track_status(self, handle: SessionHandle, reply: Any) -> None:
        """Keep the session's status from a worker reply (restore.py)."""
        self._track(handle, reply)

    @staticmethod
    def _track(handle: SessionHandle, reply: Any) -> None:
        """Keep the session's status from a worker reply that carries it (SessionPublic)."""
        if isinstance(reply, dict) and reply.get("id") == handle.session_id:
            status = reply.get("status")
            if isinstance(status, str):
                handle.status = status

    async def create(
        self, op: str, payload: Any, owner: str = "", address: str = ""
    ) -> dict[str, Any]:
        """A new session ("create" from a config, "import" from an export) on the idlest worker.

        `owner` is the owner's token hash, `address` the client's address: both have quotas.
        """
        limit = self.settings.max_sessions
        if len(self.handles) >= limit:
            raise self.quota_error(f"{len(self.handles)} sessions exist; max_sessions = {limit}")
        self._check_session_quotas(owner, address)
        session_id = secrets.token_urlsafe(9)
        # A shared backend applies the quotas over every replica's sessions and places it.
        worker = await self.backend.place(self, session_id, owner, address)
        if worker is None:
            worker = self.idlest_worker()
        # Reserve the slot first so concurrent creates cannot overshoot max_sessions.
        handle = self.new_handle(session_id, worker, owner, address)
        if self.persistence is not None:  # its first checkpoint goes out before the reply
            self.persistence.track(session_id, owner, address)
        try:
            public: dict[str, Any] = await self._request(worker, op, session_id, payload)
        except BaseException as error:
            self._drop(session_id)
            if not (isinstance(error, SessionCallError) and error.status < 500):
                # Timed out or cancelled: the worker may still create it; do not leave an orphan.
                self._forget(worker, session_id, "delete")
            raise
        self._track(handle, public)
        handle.ready, handle.last_active = True, time.monotonic()
        if owner:
            self.owners.add(owner)
        return public

    def idlest_worker(self, prefer_warm: bool = False) -> WorkerHandle:
        """The live worker with the fewest sessions (prefer_warm: a warm one first, as for a
        restore, which a starting worker process would keep waiting seconds); 503 when none
        runs. Creates do not prefer warm ones: at start every session would go to the worker
        that warmed up first, and sessions never move."""
        live = [w for w in self.workers if w.alive]
        if not live:
            raise SessionCallError(503, "no worker is running")
        return min(live, key=lambda w: (prefer_warm and not w.ready, w.sessions))

    def new_handle(
        self, session_id: str, worker: WorkerHandle, owner: str, address: str
    ) -> SessionHandle:
        """Register a session's handle on `worker` (the worker creates it next)."""
        handle = SessionHandle(session_id, worker, owner=owner, address=address, ready=False)
        self.handles[session_id] = handle
        worker.sessions += 1
        return handle

    async def delete(self, session_id: str) -> None:
        """Remove a session (and its stored row); its subscribers get {"type": "removed"}."""
        handle = await self.ensure(session_id)
        try:
            await self._request(handle.worker, "delete", session_id)
        finally:
            self._drop(session_id)
            if self.persistence is not None:
                await self.persistence.forget(session_id)

    def discard(self, session_id: str) -> None:
        """Forget a session's handle without telling anyone (restore.py: evicted, or a failed
        restore)."""
        self._drop(session_id)

    def lose(self, session_id: str, detail: str) -> None:
        """Forget a session whose worker died: its watchers get "lost" and close code 1011."""
        self._drop(session_id, lost=detail)

    def _drop(self, session_id: str, lost: str | None = None) -> None:
        """Forget a session; its watchers get "removed" (deleted) or "lost" (its worker died)."""
        handle = self.handles.pop(session_id, None)
        if handle is None:
            return
        self.backend.released(session_id)
        handle.worker.sessions -= 1
        for subscriber in handle.subscribers:
            if lost is None:
                subscriber.push_control({"type": "removed"})
            else:
                subscriber.push_control({"type": "lost", "detail": lost})
                subscriber.lost = True
            subscriber.closing = True
            subscriber.event.set()

    # ---- subscribers -----------------------------------------------------------------------

    async def subscribe(self, session_id: str) -> Subscriber:
        """Register a websocket client; its slot is seeded with the full-history first frame."""
        handle = await self.ensure(session_id)
        # The handle's worker as of each frame taken: a restored session moves to a new one.
        subscriber = Subscriber(
            session_id, on_taken=lambda: handle.worker.tell_taken(session_id)
        )
        handle.subscribers.add(subscriber)
        try:
            await self._seed(handle, subscriber)
        except BaseException:
            handle.subscribers.discard(subscriber)
            raise
        if handle.paused_unwatched:
            await self._resume(handle)
        return subscriber

    async def _seed(self, handle: SessionHandle, subscriber: Subscriber) -> None:
        """Subscribe in the worker; its reply pushes the hello and the full-history frame."""

        def seed(reply: dict[str, Any]) -> None:
            # Runs in pipe order, so later frames merge after this one and none is missed.
            subscriber.push_control({"type": "hello", "protocol": 1, "session": reply["session"]})
            subscriber.part = reply["part"]
            subscriber.seeded = True
            subscriber.event.set()

        await self._request(handle.worker, "subscribe", handle.session_id, None, seed)

    async def reseed(self, handle: SessionHandle, subscriber: Subscriber) -> None:
        """A restored session's watcher: a fresh hello and full frame on the same connection
        (if that fails, the watcher is closed as lost)."""
        try:
            await self._seed(handle, subscriber)
        except SessionCallError as error:
            subscriber.push_control({"type": "lost", "detail": str(error.detail)})
            subscriber.lost = subscriber.closing = True
            subscriber.event.set()

    async def _resume(self, handle: SessionHandle) -> None:
        """Play a session the manager paused for want of watchers (within the running quota)."""
        handle.paused_unwatched = False
        if await self._run_refusal(handle) is not None:
            return  # the owner started others meanwhile: it stays paused, as the frames show
        with contextlib.suppress(SessionCallError):
            reply = await self._request(
                handle.worker, "command", handle.session_id, {"type": "play"}
            )
            self._track(handle, reply)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a websocket client (its worker stops building frames nobody reads).

        Synchronous and fire-and-forget, so it is safe in a cancelled handler's cleanup.
        """
        handle = self.handles.get(subscriber.session_id)
        if handle is None or subscriber not in handle.subscribers:
            return
        handle.subscribers.discard(subscriber)
        handle.last_active = time.monotonic()
        self._forget(handle.worker, subscriber.session_id, "unsubscribe")

    def forget_call(self, worker: WorkerHandle, session_id: str, op: str) -> None:
        """An operation whose answer nobody awaits; safe from any thread (restore.py)."""
        self._forget(worker, session_id, op)

    def _forget(self, worker: WorkerHandle, session_id: str, op: str) -> None:
        """Send an operation whose answer nobody awaits (dispatch drops unknown replies)."""
        if worker.alive:
            with contextlib.suppress(OSError):
                worker.send(("call", next(self.request_ids), op, session_id, None))

    # ---- idle sessions ---------------------------------------------------------------------

    async def _expire_idle(self) -> None:
        """Delete sessions nobody has watched or called for session_idle_seconds, and pause
        running ones nobody has watched or called for unwatched_pause_seconds (a closed tab
        no longer trains to the epoch budget, slowing everyone else's sessions)."""
        idle = self.settings.session_idle_seconds
        unwatched = self.settings.unwatched_pause_seconds
        period = min(idle, unwatched) if unwatched > 0 else idle
        while True:
            await asyncio.sleep(min(5.0, max(0.05, period / 4)))
            now = time.monotonic()
            for session_id, handle in list(self.handles.items()):
                if handle.subscribers or not handle.ready:
                    continue
                if now - handle.last_active > idle:
                    with contextlib.suppress(SessionCallError):
                        if self.persistence is not None:
                            # Out of memory, not out of the database: back on its next request.
                            await self.persistence.evict(handle)
                        else:
                            await self.delete(session_id)
                elif (
                    unwatched > 0
                    and handle.status == "running"
                    and now - handle.last_active > unwatched
                    and not self._job_runs_on(session_id)
                ):
                    with contextlib.suppress(SessionCallError):
                        await self._pause_unwatched(handle)

    def _job_runs_on(self, session_id: str) -> bool:
        """Whether a job (a REST step someone polls) is running on the session: not unwatched."""
        return any(r.target == session_id and r.running for r in self.jobs.jobs.values())

    async def _pause_unwatched(self, handle: SessionHandle) -> None:
        """Pause a running session nobody watches; a new subscriber plays it again."""
        session_id = handle.session_id
        # Not through call(): the janitor's own calls must not count as someone touching it.
        self._track(handle, await self._request(handle.worker, "get", session_id))
        gone = self.handles.get(session_id) is not handle
        if handle.status != "running" or handle.subscribers or gone:
            return  # it ended by itself (budget, step done), or someone came meanwhile
        self._track(
            handle, await self._request(handle.worker, "command", session_id, {"type": "pause"})
        )
        handle.paused_unwatched = handle.status != "running"
        if handle.paused_unwatched:
            logger.info(
                "session paused: unwatched",
                extra={"session": session_id, "unwatched_pause_seconds":
                       self.settings.unwatched_pause_seconds},
            )

    def stats(self) -> dict[str, int]:
        """Counts for /health."""
        return {"sessions": len(self.handles), "workers": sum(w.alive for w in self.workers)}
