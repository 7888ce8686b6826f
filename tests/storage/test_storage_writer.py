"""The checkpoint writer thread (app/storage/writer.py) on SQLite and PostgreSQL.

The gold is the concatenation of every row submitted: whatever the writer coalesces, retries
or drops, what loads back must be exactly those rows (or a stated loss).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy.exc import OperationalError

from app.storage import Storage
from app.storage.writer import CheckpointWriter, coalesce
from tests.storage.test_storage_sessions import checkpoint, chunk_count, rows, unmerged


class GatedStorage:
    """Lets a test hold the writer inside save_checkpoint until it opens the gate."""

    def __init__(self, storage: Storage) -> None:
        self.storage, self.gate, self.entered = storage, threading.Event(), threading.Event()
        self.save = storage.save_checkpoint
        self.failures_left = 0
        storage.save_checkpoint = self.gated_save  # type: ignore[method-assign]

    def gated_save(self, cp: Any) -> None:
        self.entered.set()
        assert self.gate.wait(10.0), "the test never opened the gate"
        if self.failures_left:
            self.failures_left -= 1
            raise OperationalError("UPDATE sessions", {}, Exception("database is locked"))
        self.save(cp)


@pytest.fixture
def gated(storage: Storage) -> GatedStorage:
    """The storage with its save_checkpoint behind a gate."""
    return GatedStorage(storage)


@pytest.fixture
def writer(storage: Storage) -> Iterator[CheckpointWriter]:
    """A CheckpointWriter on the storage, closed after the test."""
    checkpoint_writer = CheckpointWriter(storage)
    yield checkpoint_writer
    checkpoint_writer.close(10.0)


def test_queued_checkpoints_coalesce(
    storage: Storage, gated: GatedStorage, writer: CheckpointWriter
) -> None:
    """While one write is held, five more checkpoints of the session queue up and are
    written as ONE (newest snapshot, rows joined; two chunks with merging off); the history
    is every row, once."""
    unmerged(storage)
    writer.submit(checkpoint(first_epoch=1, count=10))
    assert gated.entered.wait(5.0)
    for first in range(11, 61, 10):
        writer.submit(checkpoint(first_epoch=first, count=10, timetravel=[(first, b"tt")]))
    assert writer.pending() == 2  # the one being written and the coalesced rest
    gated.gate.set()
    assert writer.flush(10.0)
    assert (writer.submitted, writer.written, writer.dropped) == (6, 2, 0)
    stored = storage.load_session("s1")
    assert stored is not None and stored.epoch == 60
    np.testing.assert_array_equal(stored.history, rows(1, 60))
    assert [epoch for epoch, _ in stored.timetravel] == [11, 21, 31, 41, 51]
    assert chunk_count(storage, "s1") == 2


def test_coalesce_rules() -> None:
    """A reset supersedes older rows; rows that do not join up are not merged; a time-travel
    epoch dropped by the newer checkpoint is gone from the merge."""
    older = checkpoint(count=10, timetravel=[(5, b"five")])
    reset = checkpoint(count=3, history_id=2, reset_history=True, timetravel_dropped=[5])
    merged = coalesce(older, reset)
    assert merged is not None and merged.rows == rows(1, 3).tobytes() and merged.reset_history
    assert list(merged.timetravel) == [] and list(merged.timetravel_dropped) == [5]
    assert coalesce(older, checkpoint(first_epoch=15, count=10)) is None
    joined = coalesce(reset, checkpoint(first_epoch=4, count=2))
    assert joined is not None and joined.reset_history and joined.first_epoch == 1
    assert joined.rows == rows(1, 3).tobytes() + rows(4, 2).tobytes()


def test_transient_failure_is_retried(
    storage: Storage, gated: GatedStorage, writer: CheckpointWriter
) -> None:
    """A write the database refuses ("database is locked") is retried, with the checkpoints
    that arrived meanwhile coalesced into it: nothing is lost."""
    gated.failures_left = 1
    writer.submit(checkpoint(first_epoch=1, count=10))
    assert gated.entered.wait(5.0)
    writer.submit(checkpoint(first_epoch=11, count=10))
    gated.gate.set()
    assert writer.flush(10.0)
    assert writer.failures == 1 and writer.dropped == 0
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 20))


def test_backlog_is_bounded(storage: Storage, gated: GatedStorage) -> None:
    """Past max_backlog_bytes a checkpoint is dropped, on_dropped names its session, and the
    session's later partial checkpoints are refused until a full one (reset_history) comes."""
    one = checkpoint(count=10).size
    writer = CheckpointWriter(storage, max_backlog_bytes=3 * one)
    lost: list[str] = []
    writer.on_dropped = lost.append
    try:
        writer.submit(checkpoint("s2", count=10))  # taken by the thread, held at the gate
        assert gated.entered.wait(5.0)
        writer.submit(checkpoint(first_epoch=1, count=10))
        writer.submit(checkpoint(first_epoch=11, count=10))
        writer.submit(checkpoint(first_epoch=21, count=20))  # would pass the bound
        assert lost == ["s1"] and writer.dropped == 1
        writer.submit(checkpoint(first_epoch=41, count=1))  # after a hole: refused
        assert lost == ["s1", "s1"] and writer.backlog_bytes() <= 3 * one
        # A full one replaces what is queued (coalesced), so it fits: taken.
        writer.submit(checkpoint(first_epoch=1, count=25, reset_history=True))
        assert lost == ["s1", "s1"]
        gated.gate.set()
        assert writer.flush(10.0)
    finally:
        writer.close(10.0)
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 25))


def test_delete_discards_queued_and_late_checkpoints(
    storage: Storage, gated: GatedStorage, writer: CheckpointWriter
) -> None:
    """delete() drops the session's queued checkpoints, deletes it after the write in flight,
    and a checkpoint still arriving from its worker afterwards does not bring it back."""
    writer.submit(checkpoint(count=10))
    assert gated.entered.wait(5.0)
    writer.submit(checkpoint(first_epoch=11, count=10))
    done = writer.delete("s1")
    writer.submit(checkpoint(first_epoch=21, count=10))
    gated.gate.set()
    assert done.result(10.0) is None
    assert writer.flush(10.0)
    assert storage.load_session("s1") is None and writer.written == 1


def test_close_flushes_and_after_runs_in_order(
    storage: Storage, writer: CheckpointWriter
) -> None:
    """close() writes everything queued; an after() op sees the checkpoints queued before it
    (set_state("stored") after the last checkpoint of an evicted session)."""
    for session in ("a", "b", "c"):
        for first in range(1, 101, 10):
            writer.submit(checkpoint(session, first_epoch=first, count=10))
    stored_state = writer.after("b", lambda: storage.set_state("b", "stored"))
    assert writer.close(10.0)
    assert stored_state.result(1.0) is None
    assert storage.session_ids("stored") == ["b"]
    for session in ("a", "b", "c"):
        loaded = storage.load_session(session)
        assert loaded is not None
        np.testing.assert_array_equal(loaded.history, rows(1, 100))
    writer.on_dropped = lambda session: pytest.fail(f"asked {session} for a full checkpoint")
    writer.submit(checkpoint("a", first_epoch=101))  # after close: dropped, never blocks
    assert writer.pending() == 0 and writer.dropped == 1


def test_unwritable_checkpoint_is_dropped_not_retried(
    storage: Storage, writer: CheckpointWriter
) -> None:
    """A checkpoint the database can never take (rows that are not whole rows) is dropped at
    once, on_dropped asks for a full one, partial ones are refused until it comes."""
    lost: list[str] = []
    writer.on_dropped = lost.append
    writer.submit(checkpoint(count=10))
    writer.submit(checkpoint(first_epoch=11, count=10, rows=b"12345"))
    assert writer.flush(10.0)
    assert lost == ["s1"] and writer.failures == 1
    writer.submit(checkpoint(first_epoch=11, count=10))
    assert lost == ["s1", "s1"]
    writer.submit(checkpoint(first_epoch=1, count=20, reset_history=True))
    assert writer.flush(10.0)
    stored = storage.load_session("s1")
    assert stored is not None
    np.testing.assert_array_equal(stored.history, rows(1, 20))
