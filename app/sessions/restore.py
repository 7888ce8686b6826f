"""The web process's side of sessions that last: checkpoints to the database, sessions back.

- Checkpoints: a worker sends ("checkpoint", SessionCheckpoint) (app/sessions/checkpointing.py);
  the pipe's reader thread calls `on_checkpoint`, which fills in the owner and address and hands
  it to the storage's writer thread (app/storage/writer.py): the event loop never sees it.
- A worker that dies: `recover` writes what its checkpoints left pending, then brings each of
  its sessions back from the database onto the fresh worker, paused; their websocket
  subscribers get {"type": "restored", "epoch": N, "detail": ...}, then a fresh hello and a
  full-history frame on the same connection.
- A server start: `start` brings every "live" session back, paused, and registers the owners,
  so their tokens still work.
- Idle expiry: `evict` stores the session's last state and marks it "stored"; `ensure` (every
  session route, the websocket, `SessionManager.call`) restores it on its next request.
- Delete: `forget` removes its row (history and time-travel rows cascade).
No database call runs on the event loop: each is `await storage.call(...)` (a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.storage import SessionCheckpoint, Storage, StoredSession
from app.storage.tables import sessions as sessions_table
from app.storage.writer import CheckpointWriter

if TYPE_CHECKING:
    from app.sessions.manager import SessionHandle, SessionManager
    from app.sessions.worker_link import WorkerHandle

logger = logging.getLogger("nn_playground.sessions")
FLUSH_SECONDS = 5.0  # how long a restore waits for the writer to store pending checkpoints
# A session whose workers keep dying (a state that crashes them?) is lost after this many
# restores within RESTORE_WINDOW seconds, instead of crashing worker after worker.
MAX_RESTORES = 3
RESTORE_WINDOW = 60.0


class Persistence:
    """Checkpoints in, sessions back: the manager's link to the database."""

    def __init__(self, manager: SessionManager, storage: Storage) -> None:
        self.manager = manager
        self.storage = storage
        self.writer = CheckpointWriter(storage)
        self.writer.on_dropped = self._resend_whole
        # Live sessions whose checkpoints are stored: id -> (owner hash, address). Read by the
        # pipes' reader threads (a dict lookup is atomic); a session not in it is not stored
        # (deleted, or a checkpoint that arrived after its delete).
        self.persisted: dict[str, tuple[str, str]] = {}
        # Sessions evicted to the database ("stored"): id -> owner hash. Known without a query,
        # so a request for an unknown id costs no database call.
        self.stored: dict[str, str] = {}
        self.stored_owners: Counter[str] = Counter()
        self.restoring: dict[str, asyncio.Future[None]] = {}
        self.restored_count = 0

    # ---- checkpoints (reader threads) ------------------------------------------------------

    def on_checkpoint(self, checkpoint: SessionCheckpoint) -> None:
        """Runs in a pipe's reader thread: hand a checkpoint to the writer (never blocks)."""
        known = self.persisted.get(checkpoint.session_id)
        if known is None:
            return
        owner, address = known
        self.writer.submit(dataclasses.replace(checkpoint, owner_hash=owner, address=address))

    def _resend_whole(self, session_id: str) -> None:
        """The writer dropped a checkpoint (backlog full): the worker's next one carries the
        whole history (a stored history never has a hole). Runs in the reader thread."""
        handle = self.manager.handles.get(session_id)
        if handle is not None:
            self.manager.forget_call(handle.worker, session_id, "checkpoint_whole")

    def track(self, session_id: str, owner: str, address: str) -> None:
        """Store this live session's checkpoints from now on."""
        self.persisted[session_id] = (owner, address)

    # ---- start and stop --------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every "live" session back, paused; remember the "stored" ones and owners."""
        stored = await self.storage.call(_stored_owners, self.storage)
        for session_id, owner in stored:
            self._remember_stored(session_id, owner)
        live = await self.storage.call(self.storage.session_ids, "live")
        if not live:
            return
        started = time.monotonic()
        room = max(0, self.manager.settings.max_sessions - len(self.manager.handles))
        back, later = live[:room], live[room:]
        gate = asyncio.Semaphore(max(1, self.manager.settings.database_threads))

        async def one(session_id: str) -> bool:
            async with gate:
                try:
                    return await self.restore_stored(session_id, reason="start") is not None
                except Exception:
                    logger.exception("session not restored", extra={"session": session_id})
                    return False

        results = await asyncio.gather(*(one(s) for s in back))
        for session_id in later:  # over max_sessions: they come back on their next request
            with contextlib.suppress(Exception):
                await self.storage.call(self.storage.set_state, session_id, "stored")
                known: str | None = await self.storage.call(
                    self.storage.session_owner, session_id
                )
                self._remember_stored(session_id, known or "")
        logger.info(
            "sessions restored",
            extra={"restored": sum(results), "failed": len(results) - sum(results),
                   "left_stored": len(later), "seconds": round(time.monotonic() - started, 3)},
        )

    async def stop(self) -> None:
        """After the workers stopped (their last checkpoints handed over): write them all."""
        await asyncio.to_thread(self.writer.close, FLUSH_SECONDS)

    # ---- restore ---------------------------------------------------------------------------

    def _remember_stored(self, session_id: str, owner: str) -> None:
        if session_id not in self.stored:
            self.stored[session_id] = owner
            self.stored_owners[owner] += 1
            if owner:
                self.manager.owners.add(owner)  # its token still works for it

    def _forget_stored(self, session_id: str) -> None:
        owner = self.stored.pop(session_id, None)
        if owner is not None:
            self.stored_owners[owner] -= 1
            if self.stored_owners[owner] <= 0:
                del self.stored_owners[owner]

    def knows(self, session_id: str) -> bool:
        """Whether the session is stored (evicted) or being restored."""
        return session_id in self.stored or session_id in self.restoring

    async def restore_stored(self, session_id: str, reason: str) -> SessionHandle | None:
        """Load a stored session and bring it back on the idlest worker (None: no such row).

        Concurrent requests for the same session wait for one restore.
        """
        pending = self.restoring.get(session_id)
        if pending is not None:
            await asyncio.shield(pending)
            return self.manager.handles.get(session_id)
        future: asyncio.Future[None] = self.manager.loop.create_future()
        self.restoring[session_id] = future
        try:
            stored = await self.storage.call(self.storage.load_session, session_id)
            if stored is None or session_id in self.manager.handles:
                self._forget_stored(session_id)
                return self.manager.handles.get(session_id)
            worker = self.manager.idlest_worker(prefer_warm=reason == "request")
            handle = await self._bring_back(stored, worker, None)
            if stored.state != "live":
                await self.storage.call(self.storage.set_state, session_id, "live")
            self._forget_stored(session_id)
            logger.info("session restored", extra={
                "session": session_id, "epoch": stored.epoch, "reason": reason})
            return handle
        finally:
            del self.restoring[session_id]
            future.set_result(None)

    async def _bring_back(
        self, stored: StoredSession, worker: WorkerHandle, handle: SessionHandle | None
    ) -> SessionHandle:
        """The "restore" op on `worker`; a new handle, or `handle` moved to `worker`."""
        manager = self.manager
        session_id = stored.session_id
        created = handle is None
        if handle is None:
            handle = manager.new_handle(session_id, worker, stored.owner_hash, stored.address)
        else:
            handle.worker = worker
            worker.sessions += 1
        self.track(session_id, stored.owner_hash, stored.address)
        try:
            public = await manager.request(worker, "restore", session_id, restore_payload(stored))
        except BaseException:
            if created:  # a recovered session's handle (and its watchers) is the caller's
                self.persisted.pop(session_id, None)
                manager.discard(session_id)
            raise
        manager.track_status(handle, public)
        handle.ready, handle.last_active = True, time.monotonic()
        if stored.owner_hash:
            manager.owners.add(stored.owner_hash)
        self.restored_count += 1
        return handle

    async def recover(self, handles: list[SessionHandle], worker: WorkerHandle) -> None:
        """A worker died: its sessions come back on `worker` from their last checkpoints."""
        started = time.monotonic()
        # Checkpoints the dead worker sent before it died are in the writer's queue: store them.
        await asyncio.to_thread(self.writer.flush, FLUSH_SECONDS)

        async def one(handle: SessionHandle) -> None:
            session_id = handle.session_id
            now = time.monotonic()
            handle.restores = [t for t in handle.restores if now - t < RESTORE_WINDOW] + [now]
            try:
                if len(handle.restores) > MAX_RESTORES:
                    raise RuntimeError(f"its worker died {len(handle.restores)} times within "
                                       f"{RESTORE_WINDOW:g} s")
                stored = await self.storage.call(self.storage.load_session, session_id)
                if stored is None:
                    raise LookupError("it was never checkpointed")
                if self.manager.handles.get(session_id) is not handle:
                    return  # deleted meanwhile
                await self._bring_back(stored, worker, handle)
            except Exception as error:
                if handle.worker is worker and not worker.alive:
                    return  # the fresh worker died too: its own recover brings it back
                logger.exception("session not restored", extra={"session": session_id})
                self.manager.lose(session_id, f"its worker stopped and it could not be "
                                  f"restored: {error}")
                self._done_restoring(session_id)
                return
            self._done_restoring(session_id)
            detail = (f"the worker running this session stopped; it was restored from its "
                      f"checkpoint at epoch {stored.epoch}, paused")
            for subscriber in list(handle.subscribers):
                subscriber.push_control({"type": "restored", "epoch": stored.epoch,
                                         "detail": detail})
                await self.manager.reseed(handle, subscriber)
            logger.info("session restored", extra={
                "session": session_id, "epoch": stored.epoch, "reason": "worker_lost",
                "seconds": round(time.monotonic() - started, 3)})

        for handle in handles:
            self.restoring.setdefault(handle.session_id, self.manager.loop.create_future())
        await asyncio.gather(*(one(h) for h in handles))

    def _done_restoring(self, session_id: str) -> None:
        """Calls waiting for this session's restore go on (ensure)."""
        pending = self.restoring.pop(session_id, None)
        if pending is not None and not pending.done():
            pending.set_result(None)

    # ---- evict and delete ------------------------------------------------------------------

    async def evict(self, handle: SessionHandle) -> None:
        """Idle expiry: its last state is stored (the worker's "evict"), then it leaves memory."""
        manager = self.manager
        session_id = handle.session_id
        await manager.request(handle.worker, "evict", session_id)
        manager.discard(session_id)
        self.persisted.pop(session_id, None)
        self._remember_stored(session_id, handle.owner)
        # After its last checkpoint, in the writer thread (never on the event loop).
        await asyncio.wrap_future(
            self.writer.after(session_id, lambda: self.storage.set_state(session_id, "stored"))
        )

    async def forget(self, session_id: str) -> None:
        """An explicit delete: the row goes (after any checkpoint of it still being written)."""
        self.persisted.pop(session_id, None)
        self._forget_stored(session_id)
        # Its queued checkpoints are discarded, late ones dropped, then the row goes.
        await asyncio.wrap_future(self.writer.delete(session_id))


def _stored_owners(storage: Storage) -> list[tuple[str, str]]:
    """(id, owner hash) of every "stored" session (in a database thread)."""
    columns = sessions_table.c
    with storage.reading() as conn:
        rows = conn.execute(
            select(columns.id, columns.owner_hash).where(columns.state == "stored")
        ).all()
    return [(row.id, row.owner_hash) for row in rows]


def restore_payload(stored: StoredSession) -> dict[str, Any]:
    """The worker's "restore" payload of a stored session (also used by the benchmark)."""
    return {
        "snapshot": stored.snapshot,
        "history_columns": stored.history_columns,
        "history": stored.history_bytes,
        "timetravel": stored.timetravel,
        "status": stored.status,
    }
