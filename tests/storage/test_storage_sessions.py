"""Storage of sessions (app/storage/store.py) on SQLite and on a real PostgreSQL server.

The gold is what was sent: every test saves checkpoints built from known numpy rows and
compares what load_session returns with them, value for value.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
from sqlalchemy import event, func, select

from app.storage import SessionCheckpoint, Storage
from app.storage.tables import history_chunks, sessions, timetravel_checkpoints

COLUMNS = ["epoch", "train_loss", "test_loss", "grad_norm"]


def rows(first_epoch: int, count: int, width: int = len(COLUMNS)) -> np.ndarray:
    """Deterministic history rows for epochs first_epoch .. first_epoch + count - 1."""
    epochs = np.arange(first_epoch, first_epoch + count, dtype=np.float64)[:, None]
    return epochs + np.arange(width, dtype=np.float64)[None, :] / 10.0 + np.pi


def checkpoint(
    session_id: str = "s1", first_epoch: int = 1, count: int = 10, **changes: Any
) -> SessionCheckpoint:
    """A checkpoint carrying rows(first_epoch, count), at the epoch of its last row."""
    values: dict[str, Any] = {
        "session_id": session_id,
        "owner_hash": "a" * 64,
        "address": "127.0.0.1",
        "epoch": first_epoch + count - 1,
        "status": "running",
        "history_id": 1,
        "snapshot": json.dumps({"epoch": first_epoch + count - 1}).encode(),
        "history_columns": COLUMNS,
        "first_epoch": first_epoch,
        "rows": rows(first_epoch, count).tobytes(),
        "reset_history": False,
        **changes,
    }
    return SessionCheckpoint(**values)


def chunk_count(storage: Storage, session_id: str) -> int:
    """Stored history chunks of one session."""
    with storage.engine.connect() as conn:
        count: int = conn.execute(
            select(func.count()).where(history_chunks.c.session_id == session_id)
        ).scalar_one()
        return count


def test_checkpoint_round_trip(storage: Storage) -> None:
    """A saved checkpoint loads back field for field, its history bit for bit."""
    cp = checkpoint(count=25, timetravel=[(10, b"state-10"), (20, b"state-20")])
    storage.save_checkpoint(cp)
    stored = storage.load_session("s1")
    assert stored is not None
    assert (stored.owner_hash, stored.address, stored.state) == ("a" * 64, "127.0.0.1", "live")
    assert (stored.epoch, stored.status, stored.history_id) == (25, "running", 1)
    assert (stored.class_code, stored.learner_name) == (None, None)
    assert stored.snapshot == cp.snapshot and stored.history_columns == COLUMNS
    np.testing.assert_array_equal(stored.history, rows(1, 25))
    assert stored.history_bytes == cp.rows
    assert stored.timetravel == [(10, b"state-10"), (20, b"state-20")]
    assert storage.load_session("unknown") is None


def unmerged(storage: Storage) -> Storage:
    """The storage with chunk merging off (history_chunk_bytes 0): one chunk per write."""
    storage.settings = storage.settings.model_copy(update={"history_chunk_bytes": 0})
    return storage


def test_history_appends_chunks(storage: Storage) -> None:
    """Three checkpoints write three chunks (merging off); the history loads as their
    concatenation and the session row holds the newest snapshot and epoch."""
    unmerged(storage)
    for first in (1, 11, 21):
        storage.save_checkpoint(checkpoint(first_epoch=first, count=10))
    storage.save_checkpoint(checkpoint(first_epoch=31, count=0, epoch=30, status="paused"))
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 30))
    assert (stored.epoch, stored.status) == (30, "paused")
    assert chunk_count(storage, "s1") == 3


def test_history_reset_drops_chunks(storage: Storage) -> None:
    """reset_history=True (a new history_id) replaces the stored history by the new rows."""
    storage.save_checkpoint(checkpoint(count=50))
    storage.save_checkpoint(checkpoint(count=5, history_id=2, reset_history=True))
    stored = storage.load_session("s1")
    assert stored is not None and stored.history_id == 2
    np.testing.assert_array_equal(stored.history, rows(1, 5))
    assert chunk_count(storage, "s1") == 1


def test_rows_sent_again_are_not_duplicated(storage: Storage) -> None:
    """A checkpoint written twice (a retried write) stores its rows once."""
    storage.save_checkpoint(checkpoint(count=10))
    storage.save_checkpoint(checkpoint(first_epoch=11, count=10))
    storage.save_checkpoint(checkpoint(first_epoch=11, count=10))
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 20))


def test_timetravel_added_and_thinned(storage: Storage) -> None:
    """Time-travel checkpoints accumulate; thinned epochs go; a re-sent epoch is replaced."""
    storage.save_checkpoint(checkpoint(timetravel=[(1, b"one"), (2, b"two"), (4, b"four")]))
    storage.save_checkpoint(
        checkpoint(
            first_epoch=11, timetravel=[(8, b"eight"), (4, b"FOUR")], timetravel_dropped=[2]
        )
    )
    stored = storage.load_session("s1")
    assert stored is not None
    assert stored.timetravel == [(1, b"one"), (4, b"FOUR"), (8, b"eight")]


def test_state_class_and_delete(storage: Storage) -> None:
    """set_state moves a session between the "live" and "stored" lists, a later checkpoint
    keeps its state, set_class attaches it, delete_session removes it with its rows."""
    storage.save_checkpoint(checkpoint("s1", timetravel=[(1, b"x")]))
    storage.save_checkpoint(checkpoint("s2"))
    storage.set_state("s1", "stored")
    storage.save_checkpoint(checkpoint("s1", first_epoch=11))
    assert storage.session_ids("live") == ["s2"]
    assert storage.session_ids("stored") == ["s1"]
    storage.set_class("s2", "ABC123", "Ada")
    stored = storage.load_session("s2")
    assert stored is not None and (stored.class_code, stored.learner_name) == ("ABC123", "Ada")
    assert storage.session_owner("s1") == "a" * 64 and storage.session_owner("nope") is None
    storage.delete_session("s1")
    assert storage.load_session("s1") is None
    with storage.engine.connect() as conn:
        for table in (history_chunks, timetravel_checkpoints):
            left = conn.execute(select(func.count()).where(table.c.session_id == "s1"))
            assert left.scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(sessions)).scalar_one() == 1


def test_long_history_is_written_incrementally(storage: Storage) -> None:
    """A 100,000-epoch history saved by 100 checkpoints of 1,000 epochs: the bytes each
    checkpoint sends to the database (the SQL parameters, counted at the driver) do not grow
    with the history stored before it: its own rows, plus at most history_chunk_bytes when
    it merges chunks, the same in the second half as in the first, and on average a few times
    its rows; the whole history loads back exactly, from a few chunks."""
    sent: list[int] = []

    def count_bytes(
        _conn: Any, _cursor: Any, _sql: str, params: Any, _context: Any, many: bool
    ) -> None:
        for batch in params if many else [params]:
            values = batch.values() if isinstance(batch, dict) else batch
            for value in values:
                value = getattr(value, "obj", value)  # psycopg wraps blobs in Binary(obj)
                if isinstance(value, bytes | bytearray | memoryview | str):
                    sent[-1] += len(value)

    event.listen(storage.engine, "before_cursor_execute", count_bytes)
    try:
        for first in range(1, 100_001, 1000):
            sent.append(0)
            storage.save_checkpoint(checkpoint(first_epoch=first, count=1000))
    finally:
        event.remove(storage.engine, "before_cursor_execute", count_bytes)
    row_bytes = 1000 * len(COLUMNS) * 8
    cap = storage.settings.history_chunk_bytes
    print(f"bytes sent per checkpoint: {sent[1]} at 1,000 epochs stored, {sent[-1]} at 99,000; "
          f"max {max(sent)}, mean {np.mean(sent):.0f}; {chunk_count(storage, 's1')} chunks")
    assert row_bytes <= sent[0] < row_bytes + 2000  # the first one inserts the session row
    # A merge sends the merged chunk (<= cap) and the parameters of its queries.
    assert max(sent) <= cap + row_bytes + 2000, sent
    assert max(sent[50:]) <= max(sent[:50]) + 16  # the epoch in the snapshot gains digits
    assert np.mean(sent) <= 6 * (row_bytes + 2000)
    stored = storage.load_session("s1")
    assert stored is not None and stored.epoch == 100_000
    np.testing.assert_array_equal(stored.history, rows(1, 100_000))
    assert chunk_count(storage, "s1") <= 100_000 * len(COLUMNS) * 8 // cap * 2 + 12


def test_history_chunks_merge_and_load_back_exactly(storage: Storage) -> None:
    """200 checkpoints of 1 to 20 epochs with history_chunk_bytes = 2 KB (64 rows of 4
    columns): the chunks stored stay few (about history / cap, a dozen more, not 200) and none
    passes the cap by more than one checkpoint's rows; the history loads back value for value
    (gold: the rows sent) after every 40 checkpoints, and so does a worker restore payload."""
    cap = 2048
    storage.settings = storage.settings.model_copy(update={"history_chunk_bytes": cap})
    rng = np.random.default_rng(7)
    first = 1
    for index in range(200):
        count = int(rng.integers(1, 21))
        storage.save_checkpoint(checkpoint(first_epoch=first, count=count))
        first += count
        if index % 40 == 39:
            stored = storage.load_session("s1")
            assert stored is not None
            np.testing.assert_array_equal(stored.history, rows(1, first - 1))
            assert stored.history_bytes == rows(1, first - 1).tobytes()
    total_bytes = (first - 1) * len(COLUMNS) * 8
    with storage.engine.connect() as conn:
        sizes = conn.execute(
            select(history_chunks.c.row_count).where(history_chunks.c.session_id == "s1")
        ).scalars().all()
    print(f"{first - 1} epochs in {len(sizes)} chunks: {sorted(sizes)}")
    assert sum(sizes) == first - 1
    assert len(sizes) <= total_bytes // cap * 2 + 12
    assert max(sizes) * len(COLUMNS) * 8 <= cap + 20 * len(COLUMNS) * 8


def test_rows_sent_again_after_a_merge_cut_the_merged_chunk(storage: Storage) -> None:
    """Rows written again from inside a merged chunk (a write retried after it was in fact
    stored) replace the overlapped rows: the history is every epoch once, with the new values
    (gold: the rows sent, the resent ones changed by +1000)."""
    for first in (1, 11, 21):
        storage.save_checkpoint(checkpoint(first_epoch=first, count=10))
    assert chunk_count(storage, "s1") == 1  # 10 + 10 merged, then + 10
    again = rows(25, 10) + 1000.0
    storage.save_checkpoint(checkpoint(first_epoch=25, count=10, rows=again.tobytes()))
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, np.vstack([rows(1, 24), again]))


def test_concurrent_calls_do_not_fail(storage: Storage) -> None:
    """A writer thread saving checkpoints while four threads read and update other rows (what
    the database threads do): no "database is locked", every row where it belongs."""
    for session in ("r0", "r1", "r2", "r3"):
        storage.save_checkpoint(checkpoint(session))
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for first in range(1, 201, 10):
                storage.save_checkpoint(checkpoint("w", first_epoch=first, count=10))
        except BaseException as error:
            errors.append(error)

    def read_and_update(session: str) -> None:
        try:
            for turn in range(21):  # ends "live"
                storage.set_state(session, "stored" if turn % 2 else "live")
                assert storage.load_session(session) is not None
                storage.session_ids("stored")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read_and_update, args=(f"r{i}",)) for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30.0)
    assert errors == []
    stored = storage.load_session("w")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 200))
    assert sorted(storage.session_ids("live")) == ["r0", "r1", "r2", "r3", "w"]


def test_reads_do_not_wait_for_a_write_in_progress(storage: Storage) -> None:
    """While a write transaction is open (the checkpoint writer mid-checkpoint), load_session
    and session_ids answer at once with the last committed state (SQLite: read transactions
    begin deferred in WAL mode; a write lock would make them wait for the busy timeout)."""
    storage.save_checkpoint(checkpoint(count=10))
    answers: list[Any] = []
    with storage.engine.begin() as conn:
        conn.execute(sessions.update().values(status="paused"))
        reader = threading.Thread(
            target=lambda: answers.extend([storage.load_session("s1"), storage.session_ids()])
        )
        reader.start()
        reader.join(5.0)
        assert not reader.is_alive(), "a read waited for the open write transaction"
    stored, ids = answers
    assert stored.status == "running" and ids == ["s1"]
