"""Sessions nobody uses: the janitor deletes (or, with a database, stores and evicts) the ones
nobody has watched or called for session_idle_seconds, and pauses running ones nobody has watched
or called for unwatched_pause_seconds; a new watcher plays a paused one again.

Why pause: a closed tab would otherwise train to the epoch budget, slowing everyone else's
sessions. app/sessions/manager.py runs the janitor (not on a replica of a shared backend, whose
shards expire their own sessions: app/backends/ray_shard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from app.sessions.handles import SessionCallError, SessionHandle

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager

logger = logging.getLogger("nn_playground.sessions")


class IdleSessions:
    """The idle-session janitor of one manager, and the resume of what it paused."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    async def expire_forever(self) -> None:
        """Delete sessions nobody has watched or called for session_idle_seconds, and pause
        running ones nobody has watched or called for unwatched_pause_seconds."""
        manager = self.manager
        idle = manager.settings.session_idle_seconds
        unwatched = manager.settings.unwatched_pause_seconds
        period = min(idle, unwatched) if unwatched > 0 else idle
        while True:
            await asyncio.sleep(min(5.0, max(0.05, period / 4)))
            now = time.monotonic()
            for session_id, handle in list(manager.handles.items()):
                if handle.subscribers or not handle.ready:
                    continue
                if now - handle.last_active > idle:
                    with contextlib.suppress(SessionCallError):
                        if manager.persistence is not None:
                            # Out of memory, not out of the database: back on its next request.
                            await manager.persistence.evict(handle)
                        else:
                            await manager.delete(session_id)
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
        jobs = self.manager.jobs.jobs
        return any(r.target == session_id and r.running for r in jobs.values())

    async def _pause_unwatched(self, handle: SessionHandle) -> None:
        """Pause a running session nobody watches; a new subscriber plays it again."""
        manager, session_id = self.manager, handle.session_id
        # Not through call(): the janitor's own calls must not count as someone touching it.
        manager.track_status(handle, await manager.request(handle.worker, "get", session_id))
        gone = manager.handles.get(session_id) is not handle
        if handle.status != "running" or handle.subscribers or gone:
            return  # it ended by itself (budget, step done), or someone came meanwhile
        manager.track_status(
            handle, await manager.request(handle.worker, "command", session_id, {"type": "pause"})
        )
        handle.paused_unwatched = handle.status != "running"
        if handle.paused_unwatched:
            logger.info(
                "session paused: unwatched",
                extra={"session": session_id, "unwatched_pause_seconds":
                       manager.settings.unwatched_pause_seconds},
            )

    async def resume(self, handle: SessionHandle) -> None:
        """Play a session paused for want of watchers (within the running quota)."""
        manager = self.manager
        handle.paused_unwatched = False
        if await manager.quotas.run_refusal(handle) is not None:
            return  # the owner started others meanwhile: it stays paused, as the frames show
        with contextlib.suppress(SessionCallError):
            reply = await manager.request(
                handle.worker, "command", handle.session_id, {"type": "play"}
            )
            manager.track_status(handle, reply)
