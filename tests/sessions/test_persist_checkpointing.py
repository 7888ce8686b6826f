"""Issue 10, worker side of sessions that last (app/sessions/checkpointing.py): what a
checkpoint carries, when one is due, and that a restored session is the one checkpointed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from app.sessions.checkpointing import (
    CheckpointState,
    build_checkpoint,
    history_from_bytes,
    restore_session,
)
from app.sessions.config import SessionConfig
from app.sessions.export import export_session
from app.sessions.session import TrainingSession
from app.storage import SessionCheckpoint


def session(**config: Any) -> TrainingSession:
    return TrainingSession(SessionConfig.model_validate({"dataset": "xor", **config}), "s1")


def train(s: TrainingSession, epochs: int) -> None:
    s.step(epochs)
    while s.is_training:
        s.train_one_epoch()


def joined(checkpoints: list[SessionCheckpoint]) -> np.ndarray:
    """The history a database holds after these checkpoints (chunks, reset on reset_history)."""
    rows: list[np.ndarray] = []
    for cp in checkpoints:
        if cp.reset_history:
            rows = []
        chunk = history_from_bytes(cp.rows, cp.history_columns)
        assert cp.first_epoch == 1 + sum(len(r) for r in rows)
        rows.append(chunk)
    return np.concatenate(rows) if rows else np.empty((0, 0))


def test_checkpoints_carry_only_new_history_rows_and_a_reset_starts_over() -> None:
    """Gold: the session's own history table. 10 epochs, then 5: the second checkpoint holds
    rows 11..15 only (not the whole history again); a reset (new history_id) sends
    reset_history with its rows from epoch 1; joined up, the chunks equal the history."""
    s, state = session(), CheckpointState()
    train(s, 10)
    first = build_checkpoint(s, state, 0.0)
    assert (first.first_epoch, first.reset_history, first.epoch) == (1, True, 10)
    assert len(first.rows) == 10 * len(s.history.columns) * 8
    train(s, 5)
    second = build_checkpoint(s, state, 1.0)
    assert (second.first_epoch, second.reset_history) == (11, False)
    assert len(second.rows) == 5 * len(s.history.columns) * 8
    np.testing.assert_array_equal(joined([first, second]), s.history.rows())
    s.reset()
    train(s, 3)
    third = build_checkpoint(s, state, 2.0)
    assert (third.first_epoch, third.reset_history, third.history_id) == (1, True, s.history_id)
    np.testing.assert_array_equal(joined([first, second, third]), s.history.rows())
    assert b'"history"' not in third.snapshot  # the snapshot is the export without it


def test_a_checkpoint_is_due_after_the_period_while_changing_and_at_once_on_a_stop() -> None:
    """Gold: the rule of the issue (at most every checkpoint_seconds while it changes; at once
    on pause, finish, divergence and a rebuild). Nothing changed: nothing is due."""
    s, state = session(), CheckpointState()
    build_checkpoint(s, state, 100.0)
    state.watch(s)
    assert not state.due(100.0 + 60, 5.0)  # unchanged: never due
    s.play()
    s.train_one_epoch()
    state.watch(s)
    assert not state.due(101.0, 5.0) and state.due(105.0, 5.0)
    s.pause()
    state.watch(s)
    assert state.due(101.0, 5.0)  # a stop is urgent
    build_checkpoint(s, state, 101.0)
    s.reset()
    state.watch(s)
    assert state.due(101.0, 5.0)  # a rebuild (new history) is urgent


def test_a_restored_session_is_the_checkpointed_one_and_trains_on_bit_identically() -> None:
    """Gold: the original session. Restored from its checkpoints (snapshot + joined rows): same
    epoch, weights hash, history and export (but paused); 7 more epochs on both give the same
    weights (optimizer and RNG states came back too)."""
    s = session(optimizer="adam", layers=[{"units": 4, "activation": "tanh", "dropout": 0.1}])
    state = CheckpointState()
    train(s, 12)
    cps = [build_checkpoint(s, state, 0.0)]
    s.play()
    for _ in range(8):
        s.train_one_epoch()
    cps.append(build_checkpoint(s, state, 1.0))  # taken while running
    rows = joined(cps)
    back = restore_session("s1", cps[-1].snapshot, cps[-1].history_columns, rows.tobytes())
    assert back.status == "paused" and back.epoch == s.epoch == 20
    assert back.weights_hash() == s.weights_hash()
    np.testing.assert_array_equal(back.history.rows(), s.history.rows())
    ours, theirs = export_session(back), export_session(s)
    assert {**ours, "status": "running"} == theirs
    s.pause()
    train(s, 7)
    train(back, 7)
    assert back.weights_hash() == s.weights_hash()


def test_a_diverged_session_with_nan_weights_comes_back_diverged() -> None:
    """An import refuses non-finite weights; a checkpoint of a diverged net (NaN stored as
    null) must still restore: status diverged, the same NaN positions, same history."""
    s, state = session(learning_rate=10.0, optimizer="sgd"), CheckpointState()
    s.play()
    while s.is_training and s.epoch < 500:
        s.train_one_epoch()
    kernel = s.model.layers[-1].params["kernel"]
    kernel[0, 0] = math.nan  # whatever the run did, the weights now hold a NaN
    s._stop("diverged", "test")
    cp = build_checkpoint(s, state, 0.0)
    back = restore_session("s1", cp.snapshot, cp.history_columns, cp.rows)
    assert back.status == "diverged" and back.epoch == s.epoch
    for mine, theirs in zip(back.model.get_weights(), s.model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)  # NaN == NaN for assert_array_equal
