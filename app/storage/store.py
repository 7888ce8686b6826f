"""Storage: the database of sessions (checkpoints, history chunks, time-travel checkpoints).

Every method but `call` is synchronous and must run off the event loop: from the loop,
`await storage.call(storage.load_session, session_id)` runs it in one of database_threads
threads; the checkpoint writer thread (writer.py) calls save_checkpoint directly. Worker
processes never touch the database: they send checkpoints over their pipe.

The history is append-only, so a checkpoint writes only the rows it has not written yet as a
new chunk (first_epoch, row_count, float64 rows): its cost does not grow with the history.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Connection, Engine, LargeBinary, delete, func, insert, select, update

from app.settings import Settings
from app.storage.database import make_engine, migrate, reading
from app.storage.tables import history_chunks, sessions, timetravel_checkpoints

T = TypeVar("T")
ROW_DTYPE = np.dtype("<f8")  # history rows: float64 little-endian, row-major


@dataclass(frozen=True)
class SessionCheckpoint:
    """What a worker sends to be stored: the state now, and the history rows not stored yet."""

    session_id: str
    owner_hash: str
    address: str
    epoch: int
    status: str
    history_id: int
    snapshot: bytes  # the export JSON without "history", utf-8
    history_columns: list[str]
    first_epoch: int  # epoch of the first row in `rows` (1-based)
    rows: bytes  # float64 rows not stored yet, row-major, n x len(history_columns)
    reset_history: bool  # history_id changed: drop the stored chunks first
    timetravel: Sequence[tuple[int, bytes]] = ()  # new time-travel checkpoints (epoch, data)
    timetravel_dropped: Sequence[int] = ()  # epochs thinned away

    @property
    def row_count(self) -> int:
        """Rows in `rows` (0 when there are no columns)."""
        width = len(self.history_columns) * ROW_DTYPE.itemsize
        return len(self.rows) // width if width else 0

    @property
    def size(self) -> int:
        """Bytes this checkpoint holds (snapshot, rows, time-travel data)."""
        return len(self.snapshot) + len(self.rows) + sum(len(data) for _, data in self.timetravel)


@dataclass(frozen=True)
class StoredSession:
    """A session as stored: its last checkpoint with the whole history joined up."""

    session_id: str
    owner_hash: str
    address: str
    class_code: str | None
    learner_name: str | None
    state: str
    epoch: int
    status: str
    history_id: int
    snapshot: bytes
    history_columns: list[str]
    history: np.ndarray[Any, np.dtype[np.float64]]  # n x len(history_columns)
    timetravel: list[tuple[int, bytes]] = field(default_factory=list)  # by epoch

    @property
    def history_bytes(self) -> bytes:
        """The history as the worker's "restore" op takes it (float64 LE, row-major)."""
        return self.history.astype(ROW_DTYPE, copy=False).tobytes()


@dataclass(frozen=True)
class StoredRow:
    """A stored (evicted) session as its owner's list shows it, without loading its history."""

    session_id: str
    epoch: int
    status: str
    snapshot: bytes  # the export JSON without "history"
    updated_at: float  # Unix seconds of its last checkpoint
    last: dict[str, float]  # the history's last row by column name ({} before epoch 1)


class Storage:
    """The database behind app.state.storage: an engine, a thread pool, the session queries."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self.engine: Engine = make_engine(settings)
        # Database calls block (network, disk, locks): they run here, never on the event loop.
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, settings.database_threads), thread_name_prefix="database"
        )

    def migrate(self) -> None:
        """Upgrade the schema to the newest revision (SchemaTooNew if the database is ahead)."""
        migrate(self.engine)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in a database thread, awaited without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reads only (database.reading): never waits for the writer."""
        return reading(self.engine)

    def close(self) -> None:
        """Wait for running calls, then close every pooled connection."""
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    # ---- sessions ----

    def save_checkpoint(self, cp: SessionCheckpoint) -> None:
        """Store a checkpoint in one transaction: the session row, new history rows as one
        chunk, time-travel checkpoints added and dropped. The state ("live"/"stored") of an
        existing row is left as set_state put it; a new row is "live"."""
        width = len(cp.history_columns) * ROW_DTYPE.itemsize
        if cp.rows and (width == 0 or len(cp.rows) % width):
            raise ValueError(
                f"checkpoint of {cp.session_id}: {len(cp.rows)} bytes of rows are not whole "
                f"rows of {len(cp.history_columns)} float64 columns"
            )
        now = time.time()
        values = {
            "owner_hash": cp.owner_hash,
            "address": cp.address,
            "epoch": cp.epoch,
            "status": cp.status,
            "history_id": cp.history_id,
            "snapshot": cp.snapshot,
            "history_columns": json.dumps(cp.history_columns),
            "updated_at": now,
        }
        sid = cp.session_id
        with self.engine.begin() as conn:
            updated = conn.execute(update(sessions).where(sessions.c.id == sid).values(values))
            if updated.rowcount == 0:
                conn.execute(
                    insert(sessions).values(
                        id=sid, state="live", class_code=None, learner_name=None,
                        created_at=now, **values,
                    )
                )
            chunks = history_chunks.c
            if cp.reset_history:
                conn.execute(delete(history_chunks).where(chunks.session_id == sid))
            if cp.rows:
                # Rows sent again (a retried write) replace what they overlap, never duplicate.
                if not cp.reset_history:
                    conn.execute(
                        delete(history_chunks).where(
                            chunks.session_id == sid, chunks.first_epoch >= cp.first_epoch
                        )
                    )
                first, data = self._merge_tail(conn, sid, cp.first_epoch, cp.rows, width)
                conn.execute(
                    insert(history_chunks).values(
                        session_id=sid, first_epoch=first, row_count=len(data) // width,
                        data=data,
                    )
                )
            travel = timetravel_checkpoints.c
            gone = set(cp.timetravel_dropped) | {epoch for epoch, _ in cp.timetravel}
            if gone:
                conn.execute(
                    delete(timetravel_checkpoints).where(
                        travel.session_id == sid, travel.epoch.in_(sorted(gone))
                    )
                )
            if cp.timetravel:
                conn.execute(
                    insert(timetravel_checkpoints),
                    [{"session_id": sid, "epoch": e, "data": d} for e, d in cp.timetravel],
                )

    def _merge_tail(
        self, conn: Connection, sid: str, first_epoch: int, rows: bytes, width: int
    ) -> tuple[int, bytes]:
        """The chunk to insert for new `rows`: merged with the session's newest chunks, which
        are deleted, while the newest is at least half the one before it and the merge stays
        within history_chunk_bytes (a binary counter: each row is rewritten a few times, a
        session keeps ~history / history_chunk_bytes + a dozen chunks, and no write moves more
        than history_chunk_bytes plus its own rows). A chunk reaching past first_epoch (rows
        written again after a merge) is cut back to first_epoch - 1 and always merged."""
        chunks = history_chunks.c
        stored = conn.execute(
            select(chunks.first_epoch, chunks.row_count)
            .where(chunks.session_id == sid)
            .order_by(chunks.first_epoch)
        ).all()
        sizes = [row.row_count * width for row in stored]
        keep_rows: dict[int, int] = {}  # first_epoch -> rows kept of a chunk cut back
        if stored and stored[-1].first_epoch + stored[-1].row_count > first_epoch:
            last = stored[-1]
            keep_rows[last.first_epoch] = first_epoch - last.first_epoch
            sizes[-1] = keep_rows[last.first_epoch] * width
        cap = self.settings.history_chunk_bytes
        newest, merged = len(rows), 0
        while merged < len(sizes):
            before = sizes[-1 - merged]
            forced = merged == 0 and bool(keep_rows)
            if not forced and (before > 2 * newest or before + newest > cap):
                break
            newest += before
            merged += 1
        if merged == 0:
            return first_epoch, rows
        taken = [row.first_epoch for row in stored[-merged:]]
        blobs = conn.execute(
            select(chunks.first_epoch, chunks.data)
            .where(chunks.session_id == sid, chunks.first_epoch.in_(taken))
            .order_by(chunks.first_epoch)
        ).all()
        parts = [
            bytes(data)[: keep_rows[first] * width] if first in keep_rows else bytes(data)
            for first, data in blobs
        ]
        conn.execute(
            delete(history_chunks).where(
                chunks.session_id == sid, chunks.first_epoch.in_(taken)
            )
        )
        return taken[0], b"".join([*parts, rows])

    def load_session(self, session_id: str) -> StoredSession | None:
        """The stored session with its whole history and time-travel checkpoints, or None."""
        with self.reading() as conn:
            row = conn.execute(select(sessions).where(sessions.c.id == session_id)).first()
            if row is None:
                return None
            chunks = conn.execute(
                select(history_chunks.c.data)
                .where(history_chunks.c.session_id == session_id)
                .order_by(history_chunks.c.first_epoch)
            ).scalars().all()
            travel = conn.execute(
                select(timetravel_checkpoints.c.epoch, timetravel_checkpoints.c.data)
                .where(timetravel_checkpoints.c.session_id == session_id)
                .order_by(timetravel_checkpoints.c.epoch)
            ).all()
        columns: list[str] = json.loads(row.history_columns)
        history = np.frombuffer(b"".join(chunks), dtype=ROW_DTYPE).astype(np.float64)
        return StoredSession(
            session_id=row.id, owner_hash=row.owner_hash, address=row.address,
            class_code=row.class_code, learner_name=row.learner_name, state=row.state,
            epoch=row.epoch, status=row.status, history_id=row.history_id,
            snapshot=bytes(row.snapshot), history_columns=columns,
            history=history.reshape(-1, len(columns)) if columns else history.reshape(0, 0),
            timetravel=[(epoch, bytes(data)) for epoch, data in travel],
        )

    def session_ids(self, state: str = "live") -> list[str]:
        """Ids of the stored sessions in `state`, least recently checkpointed first."""
        with self.reading() as conn:
            return list(
                conn.execute(
                    select(sessions.c.id)
                    .where(sessions.c.state == state)
                    .order_by(sessions.c.updated_at)
                ).scalars()
            )

    def stored_sessions(self, owner_hash: str, session_ids: Sequence[str]) -> list[StoredRow]:
        """The sessions among `session_ids` that are "stored" (evicted) and this owner's, most
        recently checkpointed first, with their snapshot and their history's last row (read
        as a slice of the newest chunk, never the whole history)."""
        if not session_ids:
            return []
        c = sessions.c
        chunks = history_chunks.c
        found: list[StoredRow] = []
        with self.reading() as conn:
            rows = conn.execute(
                select(c.id, c.epoch, c.status, c.snapshot, c.history_columns, c.updated_at)
                .where(c.id.in_(list(session_ids)), c.owner_hash == owner_hash,
                       c.state == "stored")
                .order_by(c.updated_at.desc())
            ).all()
            for row in rows:
                columns: list[str] = json.loads(row.history_columns)
                width = len(columns) * ROW_DTYPE.itemsize
                last_row = None
                if width:
                    tail = func.substr(chunks.data, (chunks.row_count - 1) * width + 1, width,
                                       type_=LargeBinary)
                    last_row = conn.execute(
                        select(tail).where(chunks.session_id == row.id, chunks.row_count > 0)
                        .order_by(chunks.first_epoch.desc()).limit(1)
                    ).scalar()
                last: dict[str, float] = {}
                if last_row is not None and len(last_row) == width:
                    values = np.frombuffer(bytes(last_row), dtype=ROW_DTYPE)
                    last = {name: float(v) for name, v in zip(columns, values, strict=True)}
                found.append(StoredRow(row.id, row.epoch, row.status, bytes(row.snapshot),
                                       row.updated_at, last))
        return found

    def session_owner(self, session_id: str) -> str | None:
        """The owner hash of a stored session (None when unknown): ownership without a load."""
        with self.reading() as conn:
            owner: str | None = conn.execute(
                select(sessions.c.owner_hash).where(sessions.c.id == session_id)
            ).scalar()
            return owner

    def set_state(self, session_id: str, state: str) -> None:
        """Mark a session "live" (in a worker) or "stored" (evicted, restored on request)."""
        if state not in ("live", "stored"):
            raise ValueError(f"state must be 'live' or 'stored', got {state!r}")
        with self.engine.begin() as conn:
            conn.execute(update(sessions).where(sessions.c.id == session_id).values(state=state))

    def set_class(
        self, session_id: str, class_code: str | None, learner_name: str | None
    ) -> None:
        """Attach a session to a class (or detach it with None, None)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(class_code=class_code, learner_name=learner_name)
            )

    def delete_session(self, session_id: str) -> None:
        """Delete a session, its history and its time-travel checkpoints."""
        with self.engine.begin() as conn:
            for table in (history_chunks, timetravel_checkpoints):
                conn.execute(delete(table).where(table.c.session_id == session_id))
            conn.execute(delete(sessions).where(sessions.c.id == session_id))
