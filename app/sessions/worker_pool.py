"""The web process's workers (app/sessions/worker_link.py): which one takes a new session, a
warmed spare kept ready, and what happens when one dies.

A dead worker's calls fail (503) and a fresh worker takes its place: the standby when there is
one (a new process needs seconds to import and warm up). With a database its sessions come back
there from their last checkpoints (app/sessions/restore.py); without one they are lost.
app/sessions/manager.py holds the workers and the standby; this module decides over them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.ops import events
from app.sessions.handles import SessionCallError
from app.sessions.worker_link import WorkerHandle

if TYPE_CHECKING:
    from app.sessions.manager import SessionManager

STANDBY_DELAY = 3.0  # seconds after start before the spare worker process starts


class WorkerPool:
    """Placement, the standby and the replacement of dead workers, over one manager's workers."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    def idlest(self, prefer_warm: bool = False) -> WorkerHandle:
        """The live worker with the fewest sessions (prefer_warm: a warm one first, as for a
        restore, which a starting worker process would keep waiting seconds); 503 when none
        runs. Creates do not prefer warm ones: at start every session would go to the worker
        that warmed up first, and sessions never move."""
        live = [w for w in self.manager.workers if w.alive]
        if not live:
            raise SessionCallError(503, "no worker is running")
        return min(live, key=lambda w: (prefer_warm and not w.ready, w.sessions))

    def standby_later(self) -> None:
        """Start the spare STANDBY_DELAY from now: once the workers (or a dead worker's
        restores) had their start (two cold starts at once on a loaded machine delayed the
        first create past a client's 5 s timeout)."""
        self.manager.loop.call_later(STANDBY_DELAY, self._start_standby)

    def _start_standby(self) -> None:
        """A spare worker process, started (and warmed) ahead: a crashed worker's sessions come
        back within ~0.1 s instead of waiting ~2.5 s for a new process to import and warm up."""
        manager = self.manager
        if (
            manager.use_processes and manager.settings.standby_worker and not manager.stopping
            and manager.standby is None and manager.workers and not manager.backend.shared
        ):
            manager.standby = manager.backend.new_worker(manager, len(manager.workers))

    def lost(self, worker: WorkerHandle) -> None:
        """A worker's pipe closed: its calls fail (503), a fresh worker takes its place, and its
        sessions come back there from their last checkpoints (without a database: lost)."""
        manager = self.manager
        worker.alive = False
        if worker is manager.standby:  # the spare itself died: start another
            manager.standby = None
            if not manager.stopping:
                self.standby_later()
            return
        if not manager.stopping:
            events.worker_lost(manager, worker)  # count the restart, log it (app/ops)
        for request_id, (future, _, target) in list(manager.pending.items()):
            if target is worker and not future.done():
                future.set_exception(SessionCallError(503, f"worker {worker.index} stopped"))
                del manager.pending[request_id]
        fresh: WorkerHandle | None = None
        if not manager.stopping and worker in manager.workers:
            # A crashed worker (e.g. killed for memory) is replaced, so capacity comes back:
            # by the warmed standby when there is one (then a new standby starts).
            fresh, manager.standby = manager.standby, None
            if fresh is None or not fresh.alive:
                fresh = manager.backend.new_worker(manager, worker.index)
            fresh.index = worker.index
            manager.workers[manager.workers.index(worker)] = fresh
            # A new spare, once the restores below had the CPU.
            self.standby_later()
        orphans = [h for h in manager.handles.values() if h.worker is worker]
        persistence = manager.persistence
        if fresh is None or persistence is None:
            for handle in orphans:
                # Not a delete: watchers get {"type": "lost"} and close code 1011 (stream.py).
                manager.lose(handle.session_id,
                             f"worker {worker.index} stopped; the session is lost")
            return
        for handle in orphans:
            worker.sessions -= 1
            handle.ready = False  # not idle while it is being restored
            # Calls to it wait for its restore (ensure) instead of failing on the dead worker.
            persistence.restoring.setdefault(handle.session_id, manager.loop.create_future())
            for subscriber in handle.subscribers:
                # Frames of the dead worker are moot: the restored hello frame replaces them.
                subscriber.part, subscriber.seeded = None, False
        if orphans:
            manager.loop.create_task(persistence.recover(orphans, self._restore_target(fresh)))

    def _restore_target(self, fresh: WorkerHandle) -> WorkerHandle:
        """Where a dead worker's sessions go: the fresh worker if it is warm (the standby),
        else the idlest warm one (a new process needs seconds to start), else the fresh one."""
        if fresh.ready:
            return fresh
        warm = [w for w in self.manager.workers if w.alive and w.ready]
        return min(warm, key=lambda w: w.sessions) if warm else fresh
