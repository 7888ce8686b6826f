"""The checkpoint writer: one thread that stores what the workers send, in arrival order.

submit() never blocks (the worker pipe's reader thread calls it): checkpoints queue per
session, and consecutive checkpoints of one session coalesce into one write (the newest
snapshot, their history rows joined), so a slow database costs one write per session, not one
per checkpoint. Sessions are written oldest-first, round robin.

The backlog is bounded by max_checkpoint_backlog_bytes. A checkpoint that would pass it is
dropped, and so is every later one of that session until one with reset_history=True (all its
rows from the first) arrives: its stored history would have a hole. `on_dropped(session_id)`
(if set) is called, from the submitting or the writer thread, each time, so the sender can
send a full one.
A write the database refused for now (down, locked) is retried with backoff, newer
checkpoints coalescing into it; one it can never take (bad rows) is dropped as above.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.storage.store import SessionCheckpoint, Storage

T = TypeVar("T")
log = logging.getLogger("nn_playground.storage")
# The database is down, locked or unreachable: the same write may succeed later.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # backoff after failed writes, the last repeats


@dataclass
class _Op:
    """A call queued behind a session's checkpoints (delete, set_state ...)."""

    fn: Callable[[], Any]
    future: Future[Any]


def coalesce(older: SessionCheckpoint, newer: SessionCheckpoint) -> SessionCheckpoint | None:
    """One checkpoint that stores what `older` then `newer` would; None if their rows do not
    join up (not contiguous, or other columns without a history reset)."""
    if newer.reset_history:
        first, rows = newer.first_epoch, newer.rows
    elif newer.history_columns != older.history_columns:
        return None
    elif not older.rows:
        first, rows = newer.first_epoch, newer.rows
    elif not newer.rows:
        first, rows = older.first_epoch, older.rows
    elif newer.first_epoch == older.first_epoch + older.row_count:
        first, rows = older.first_epoch, older.rows + newer.rows
    else:
        return None
    dropped = set(newer.timetravel_dropped)
    travel = {epoch: data for epoch, data in older.timetravel if epoch not in dropped}
    travel.update(newer.timetravel)
    return replace(
        newer,
        first_epoch=first,
        rows=rows,
        reset_history=older.reset_history or newer.reset_history,
        timetravel=sorted(travel.items()),
        timetravel_dropped=sorted(set(older.timetravel_dropped) | dropped),
    )


class CheckpointWriter:
    """The writer thread and its per-session queues (see the module docstring)."""

    def __init__(self, storage: Storage, max_backlog_bytes: int | None = None) -> None:
        self.storage = storage
        self.max_backlog_bytes = (
            max_backlog_bytes
            if max_backlog_bytes is not None
            else storage.settings.max_checkpoint_backlog_bytes
        )
        self.on_dropped: Callable[[str], None] | None = None
        self._cond = threading.Condition()
        # session id -> its queued checkpoints and ops, in order; dict order = write order.
        self._queues: dict[str, list[SessionCheckpoint | _Op]] = {}
        self._in_flight = 0  # items taken by the thread, not done yet
        self._backlog = 0  # bytes of queued checkpoints
        self._holes: set[str] = set()  # sessions that lost a checkpoint: need a full one
        self._deleted: set[str] = set()  # deleted sessions: their late checkpoints are dropped
        self._stopping = False
        self._stop = threading.Event()  # cuts a retry's backoff short on close
        # Figures for /metrics and bench/persistence.py.
        self.written = 0  # checkpoint writes (after coalescing)
        self.submitted = 0
        self.dropped = 0
        self.failures = 0
        self.bytes_written = 0
        self.write_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="checkpoint-writer", daemon=True)
        self._thread.start()

    # ---- producers (any thread; never block on the database) ----

    def submit(self, cp: SessionCheckpoint) -> None:
        """Queue a checkpoint for writing (coalesced with the session's queued one)."""
        with self._cond:
            self.submitted += 1
            sid = cp.session_id
            queue = self._queues.get(sid)
            last = queue[-1] if queue else None
            merged = coalesce(last, cp) if isinstance(last, SessionCheckpoint) else None
            growth = cp.size
            if merged is not None and isinstance(last, SessionCheckpoint):
                growth = merged.size - last.size
            dropped = (
                self._stopping
                or sid in self._deleted
                or (sid in self._holes and not cp.reset_history)
                or self._backlog + growth > self.max_backlog_bytes
            )
            if not dropped:
                self._holes.discard(sid)
                self._enqueue(cp)
                self._cond.notify()
        if not dropped or sid in self._deleted:
            return
        if self._stopping:  # shutting down: nobody can send a full one any more
            log.warning("checkpoint of %s arrived after the writer closed", sid)
            with self._cond:
                self.dropped += 1
            return
        log.warning("checkpoint of %s dropped (backlog %d bytes)", sid, self._backlog)
        self._lose(sid)

    def after(self, session_id: str, fn: Callable[[], T]) -> Future[T]:
        """Run fn() in the writer thread once the session's queued checkpoints are written
        (e.g. set_state("stored") after its last checkpoint). Await with asyncio.wrap_future."""
        future: Future[T] = Future()
        with self._cond:
            if self._stopping:
                future.set_exception(RuntimeError("checkpoint writer closed"))
                return future
            self._queues.setdefault(session_id, []).append(_Op(fn, future))
            self._cond.notify()
        return future

    def delete(self, session_id: str) -> Future[None]:
        """Delete a session from the database: its queued checkpoints are discarded and any
        that still arrive are dropped (session ids are never reused)."""
        with self._cond:
            self._deleted.add(session_id)
            self._holes.discard(session_id)
            queue = self._queues.pop(session_id, [])
            for item in queue:
                if isinstance(item, SessionCheckpoint):
                    self._backlog -= item.size
            self._queues[session_id] = [item for item in queue if isinstance(item, _Op)]
        return self.after(session_id, lambda: self.storage.delete_session(session_id))

    def pending(self) -> int:
        """Checkpoints and ops queued or being written (for /metrics)."""
        with self._cond:
            return self._in_flight + sum(len(queue) for queue in self._queues.values())

    def backlog_bytes(self) -> int:
        """Bytes of checkpoints queued, not yet written."""
        with self._cond:
            return self._backlog

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False if timeout passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queues or self._in_flight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush (up to timeout), then stop the thread; later submits are dropped."""
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._stop.set()
            self._cond.notify_all()
        self._thread.join(5.0)
        with self._cond:  # what could not be written: its waiters hear so
            for queue in self._queues.values():
                for item in queue:
                    if isinstance(item, _Op) and not item.future.done():
                        item.future.set_exception(RuntimeError("checkpoint writer closed"))
        if not flushed:
            log.error("checkpoint writer closed with %d items unwritten", self.pending())
        return flushed

    # ---- the writer thread ----

    def _enqueue(self, cp: SessionCheckpoint) -> None:
        """Append to the session's queue, coalescing with its last checkpoint (lock held)."""
        queue = self._queues.setdefault(cp.session_id, [])
        last = queue[-1] if queue else None
        merged = coalesce(last, cp) if isinstance(last, SessionCheckpoint) else None
        if merged is not None and isinstance(last, SessionCheckpoint):
            self._backlog += merged.size - last.size
            queue[-1] = merged
        else:
            self._backlog += cp.size
            queue.append(cp)

    def _take(self) -> tuple[str, list[SessionCheckpoint | _Op]] | None:
        """The oldest session's queue (lock held); None once stopping."""
        while not self._queues or self._stopping:
            if self._stopping:
                return None
            self._cond.wait()
        session_id = next(iter(self._queues))
        queue = self._queues.pop(session_id)
        self._in_flight += len(queue)
        for item in queue:
            if isinstance(item, SessionCheckpoint):
                self._backlog -= item.size
        return session_id, queue

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                taken = self._take()
            if taken is None:
                return
            session_id, queue = taken
            done, retry = 0, False
            for item in queue:
                if self._after_hole(session_id, item):
                    done += 1
                    continue
                try:
                    self._write(item)
                except TRANSIENT_ERRORS:
                    failures += 1
                    self.failures += 1
                    log.exception("checkpoint write of %s failed (will retry)", session_id)
                    retry = True
                    break
                except Exception:  # not the database's state but the checkpoint's: drop it
                    self.failures += 1
                    log.exception("checkpoint of %s could not be written (dropped)", session_id)
                    self._lose(session_id, queued_after=True)
                done += 1
            else:
                failures = 0
            with self._cond:
                self._in_flight -= len(queue)
                if retry:
                    # Back in front of anything newer of the session, which coalesces into it.
                    newer = self._queues.pop(session_id, [])
                    for item in newer:
                        if isinstance(item, SessionCheckpoint):
                            self._backlog -= item.size
                    self._queues = {session_id: [], **self._queues}
                    for item in queue[done:] + newer:
                        if isinstance(item, SessionCheckpoint):
                            self._enqueue(item)
                        else:
                            self._queues[session_id].append(item)
                self._cond.notify_all()
            if retry:
                self._stop.wait(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    def _after_hole(self, session_id: str, item: SessionCheckpoint | _Op) -> bool:
        """True (and counted as dropped) for a partial checkpoint queued behind one that could
        not be written: storing it would leave a hole in the history."""
        if not isinstance(item, SessionCheckpoint) or item.reset_history:
            return False
        with self._cond:
            if session_id not in self._holes:
                return False
            self.dropped += 1
            return True

    def _lose(self, session_id: str, queued_after: bool = False) -> None:
        """A checkpoint of the session is lost: only a full one may follow (module docstring).
        queued_after: it was being written, so the session's queued checkpoints came after it
        and the partial ones among them go too."""
        with self._cond:
            self.dropped += 1
            if session_id in self._deleted:
                return
            self._holes.add(session_id)
            queue = self._queues.get(session_id, []) if queued_after else []
            kept: list[SessionCheckpoint | _Op] = []
            for item in queue:
                if isinstance(item, SessionCheckpoint) and not item.reset_history:
                    self._backlog -= item.size
                    self.dropped += 1
                else:
                    kept.append(item)
            queue[:] = kept
        if self.on_dropped is not None:
            self.on_dropped(session_id)

    def _write(self, item: SessionCheckpoint | _Op) -> None:
        if isinstance(item, _Op):
            try:
                result = item.fn()
            except Exception as error:  # the op's caller sees it; the queue goes on
                item.future.set_exception(error)
            else:
                item.future.set_result(result)
            return
        started = time.perf_counter()
        self.storage.save_checkpoint(item)
        self.write_seconds += time.perf_counter() - started
        self.written += 1
        self.bytes_written += item.size
