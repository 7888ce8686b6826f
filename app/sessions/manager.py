"""The web process's side of the sessions: their handles, and every call and frame routed.

`SessionManager` is what routes and websockets use; its parts have modules of their own:
handles and subscribers (handles.py), quotas (quotas.py), websocket clients subscribing
(subscriptions.py), the workers, their standby and their replacement (worker_pool.py), idle and
unwatched sessions (idle.py), jobs (jobs.py) and sessions that last (restore.py).

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
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.api.owners import OwnerRegistry, hashes_match, token_hash
from app.backends import SessionBackend, backend_for
from app.sessions.bodies import RAW
from app.sessions.frames import FramePart
from app.sessions.handles import SessionCallError as SessionCallError
from app.sessions.handles import SessionHandle as SessionHandle
from app.sessions.handles import Subscriber as Subscriber
from app.sessions.idle import IdleSessions
from app.sessions.jobs import JobBoard
from app.sessions.quotas import SessionQuotas
from app.sessions.subscriptions import Subscriptions
from app.sessions.worker_link import WorkerHandle
from app.sessions.worker_pool import WorkerPool
from app.settings import Settings
from app.storage import SessionCheckpoint, Storage

if TYPE_CHECKING:
    from app.sessions.restore import Persistence


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
        self.pool = WorkerPool(self)  # places sessions, starts the standby, replaces dead workers
        self.owners = owners if owners is not None else OwnerRegistry(settings.max_owners)
        self.owners.holders.append(self.owner_in_use)
        self.quotas = SessionQuotas(self)  # sessions live, stored and training per owner/address
        self.idle = IdleSessions(self)  # expires idle sessions, pauses unwatched ones
        self.subscriptions = Subscriptions(self)  # the websocket clients of the sessions
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
        self.pool.standby_later()  # the spare starts once the workers had their start
        if self.persistence is not None:
            await self.persistence.start()  # every live session back, paused
        if not shared:  # a replica of a shared backend must not expire what others watch
            self.janitor = asyncio.create_task(self.idle.expire_forever())

    @property
    def checkpoint_seconds(self) -> float | None:
        """The workers' checkpoint period (None: no checkpoints)."""
        return self.settings.checkpoint_seconds if self.persistence is not None else None

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

    # ---- worker messages -------------------------------------------------------------------

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
                future.set_exception(SessionCallError(status, payload, self.quotas.headers(status)))
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

    # ---- workers (worker_pool.py) ----------------------------------------------------------

    def worker_lost(self, worker: WorkerHandle) -> None:
        """A worker's pipe closed: a fresh one takes its place (worker_pool.py)."""
        self.pool.lost(worker)

    def idlest_worker(self, prefer_warm: bool = False) -> WorkerHandle:
        """The live worker with the fewest sessions (worker_pool.py)."""
        return self.pool.idlest(prefer_warm)

    # ---- handles and calls -----------------------------------------------------------------

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
        self,
        worker: WorkerHandle,
        op: str,
        session_id: str,
        payload: Any = None,
        on_reply: Callable[[Any], None] | None = None,
    ) -> Any:
        """One operation on a worker, answered (not counted as anyone touching the session:
        callers that are a user's call touch the handle themselves)."""
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
            result = await self.request(handle.worker, op, session_id, payload)
            self.track_status(handle, result)
            return result
        # Counted as running while in flight, so concurrent plays cannot all pass the quota.
        handle.starting += 1
        try:
            refusal = await self.quotas.run_refusal(handle)
            if refusal is not None:
                payload = {**payload, "run_quota": refusal}
            try:
                result = await self.request(handle.worker, op, session_id, payload)
            finally:
                if refusal is None:  # a shared backend's grant has landed: before the reply
                    await self.backend.run_answered(self, handle)
        finally:
            handle.starting -= 1
        self.track_status(handle, result)
        return result

    async def call_worker(self, worker: WorkerHandle, op: str, payload: Any = None) -> Any:
        """An operation on a worker itself, about no one session (the classroom's tiles)."""
        return await self.request(worker, op, "", payload)

    def forget_call(self, worker: WorkerHandle, session_id: str, op: str) -> None:
        """An operation whose answer nobody awaits; safe from any thread (restore.py)."""
        self._forget(worker, session_id, op)

    def _forget(self, worker: WorkerHandle, session_id: str, op: str) -> None:
        """Send an operation whose answer nobody awaits (dispatch drops unknown replies)."""
        if worker.alive:
            with contextlib.suppress(OSError):
                worker.send(("call", next(self.request_ids), op, session_id, None))

    @staticmethod
    def track_status(handle: SessionHandle, reply: Any) -> None:
        """Keep the session's status from a worker reply that carries it (SessionPublic)."""
        if isinstance(reply, dict) and reply.get("id") == handle.session_id:
            status = reply.get("status")
            if isinstance(status, str):
                handle.status = status

    # ---- owners and quotas (quotas.py) -----------------------------------------------------

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
        return self.quotas.error(detail)

    # ---- creating and dropping handles -----------------------------------------------------

    async def create(
        self, op: str, payload: Any, owner: str = "", address: str = ""
    ) -> dict[str, Any]:
        """A new session ("create" from a config, "import" from an export) on the idlest worker.

        `owner` is the owner's token hash, `address` the client's address: both have quotas.
        """
        limit = self.settings.max_sessions
        if len(self.handles) >= limit:
            raise self.quota_error(f"{len(self.handles)} sessions exist; max_sessions = {limit}")
        self.quotas.check_new(owner, address)
        session_id = secrets.token_urlsafe(9)
        # A shared backend applies the quotas over every replica's sessions and places it.
        worker = await self.backend.place(self, session_id, owner, address)
        if worker is None:
            worker = self.pool.idlest()
        # Reserve the slot first so concurrent creates cannot overshoot max_sessions.
        handle = self.new_handle(session_id, worker, owner, address)
        if self.persistence is not None:  # its first checkpoint goes out before the reply
            self.persistence.track(session_id, owner, address)
        try:
            public: dict[str, Any] = await self.request(worker, op, session_id, payload)
        except BaseException as error:
            self._drop(session_id)
            if not (isinstance(error, SessionCallError) and error.status < 500):
                # Timed out or cancelled: the worker may still create it; do not leave an orphan.
                self._forget(worker, session_id, "delete")
            raise
        self.track_status(handle, public)
        handle.ready, handle.last_active = True, time.monotonic()
        if owner:
            self.owners.add(owner)
        return public

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
            await self.request(handle.worker, "delete", session_id)
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

    # ---- subscribers (subscriptions.py) ----------------------------------------------------

    async def subscribe(self, session_id: str) -> Subscriber:
        """Register a websocket client; its slot is seeded with the full-history first frame."""
        return await self.subscriptions.subscribe(session_id)

    async def reseed(self, handle: SessionHandle, subscriber: Subscriber) -> None:
        """A restored session's watcher: a fresh hello and full frame on the same connection."""
        await self.subscriptions.reseed(handle, subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Forget a websocket client; synchronous, so safe in a cancelled handler's cleanup."""
        self.subscriptions.unsubscribe(subscriber)

    def stats(self) -> dict[str, int]:
        """Counts for /health."""
        return {"sessions": len(self.handles), "workers": sum(w.alive for w in self.workers)}
