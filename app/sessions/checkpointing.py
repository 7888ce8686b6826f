"""The worker's side of sessions that last: when a session checkpoints, and what it sends.

A checkpoint is a `SessionCheckpoint` (app/storage/store.py) sent to the web process as
("checkpoint", cp); the pipe's reader thread hands it to the storage's writer thread. Nothing
here touches a database: the worker only builds bytes, between training slices.

When: at most every `checkpoint_seconds` while a session changes (it trained, a command or
setting changed it), and at once (the next pass of the worker's loop, or before a command's
reply) when it is created, imported, paused, finished, diverged, or rebuilt (a new history).
What: the export JSON without its history (`snapshot`) and only the history rows not stored yet
(float64 little-endian, row-major); a new history (history_id changed) says `reset_history` and
sends its rows from epoch 1. A 100,000-epoch run so never rewrites its history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.history import History
from app.sessions.session import TrainingSession
from app.storage.store import SessionCheckpoint

Array = npt.NDArray[np.float64]
ROW_DTYPE = np.dtype("<f8")
# Time travel (H3) may keep restorable checkpoints of past epochs: a callable on the session that
# returns (new [(epoch, data)], dropped [epoch]) since its last call; None = none kept.
TimetravelDrain = Callable[[], tuple[list[tuple[int, bytes]], list[int]]]


@dataclass
class CheckpointState:
    """What of one session is stored already, and whether it changed since."""

    stored_epoch: int = 0  # history rows of epochs 1..stored_epoch are stored
    history_id: int = -1  # the history those rows belong to (-1: nothing stored yet)
    last_at: float = -math.inf  # time.monotonic() of the last checkpoint
    dirty: bool = True  # changed since the last checkpoint
    urgent: bool = True  # checkpoint at the next chance, not after checkpoint_seconds
    status: str = ""  # the status at the last look (a change to a stop is urgent)

    def touch(self, urgent: bool = False) -> None:
        """Something changed (urgent: a pause, a rebuild, a create...)."""
        self.dirty = True
        self.urgent = self.urgent or urgent

    def watch(self, session: TrainingSession) -> None:
        """After training or a command: a stop (pause, finish, divergence) or a new history is
        urgent; any other change waits for the period."""
        if session.status != self.status:
            if self.status == "running":
                self.urgent = True  # stopped (paused, finished, diverged)
            self.status = session.status
            self.dirty = True
        if session.history_id != self.history_id:
            self.dirty = self.urgent = True
        elif session.epoch != self.stored_epoch:
            self.dirty = True

    def due(self, now: float, period: float) -> bool:
        """Whether to checkpoint now."""
        return self.dirty and now >= self.next_at(period)

    def next_at(self, period: float) -> float:
        """When a change is due to be stored (time.monotonic())."""
        return self.last_at + (0.0 if self.urgent else period)


def history_bytes(rows: Array) -> bytes:
    """History rows as stored: float64 little-endian, row-major."""
    return np.ascontiguousarray(rows, dtype=ROW_DTYPE).tobytes()


def history_from_bytes(data: bytes, columns: list[str]) -> Array:
    """The inverse of history_bytes: an (n, len(columns)) float64 array."""
    width = len(columns)
    if width == 0 or len(data) % (8 * width):
        raise ValueError(f"history of {len(data)} bytes is not rows of {width} float64 columns")
    return np.frombuffer(data, dtype=ROW_DTYPE).reshape(-1, width).astype(np.float64)


def snapshot_dict(session: TrainingSession) -> dict[str, Any]:
    """The session's export without its history (cheap at any history length)."""
    history = session.history
    session.history = History(history.norm_count)  # export_session reads it: give it none
    try:
        data = export_session(session)
    finally:
        session.history = history
    data.pop("history", None)
    return data


def build_checkpoint(
    session: TrainingSession,
    state: CheckpointState,
    now: float,
    timetravel: TimetravelDrain | None = None,
) -> SessionCheckpoint:
    """A checkpoint of what changed since `state`, which is then updated to it.

    owner_hash and address are left empty: the web process fills them in (the worker never
    learns who owns a session).
    """
    reset = state.history_id != session.history_id or session.epoch < state.stored_epoch
    first = 1 if reset else state.stored_epoch + 1
    rows = session.history.rows(first)
    snapshot = json.dumps(snapshot_dict(session), allow_nan=False).encode()
    new, dropped = timetravel() if timetravel is not None else ([], [])
    checkpoint = SessionCheckpoint(
        session_id=session.id,
        owner_hash="",
        address="",
        epoch=session.epoch,
        status=session.status,
        history_id=session.history_id,
        snapshot=snapshot,
        history_columns=list(session.history.columns),
        first_epoch=first,
        rows=history_bytes(rows),
        reset_history=reset,
        timetravel=new,
        timetravel_dropped=dropped,
    )
    state.stored_epoch, state.history_id = session.epoch, session.history_id
    state.last_at, state.dirty, state.urgent = now, False, False
    state.status = session.status
    return checkpoint


def _nan_array(value: Any) -> Array:
    """Nested lists with nulls (a diverged net's NaN/inf, as JSON writes them) as float64."""
    return np.array(_nulls_to_nan(value), dtype=np.float64)


def _has_null(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


def _nulls_to_nan(value: Any) -> Any:
    if isinstance(value, list):
        return [_nulls_to_nan(v) for v in value]
    return math.nan if value is None else value


def _zeros_for_nulls(value: Any) -> Any:
    if isinstance(value, list):
        return [_zeros_for_nulls(v) for v in value]
    return 0.0 if value is None else value


def restore_session(
    session_id: str, snapshot: bytes, history_columns: list[str], history: bytes
) -> TrainingSession:
    """A session rebuilt from a stored checkpoint, paused (a running one comes back paused).

    The same path as an import (every field validated); a diverged net's non-finite weights,
    stored as null, come back as NaN (an import refuses them).
    """
    data = json.loads(snapshot)
    if not isinstance(data, dict):
        raise ValueError("a checkpoint's snapshot is not a JSON object")
    epoch = data.get("epoch")
    rows = history_from_bytes(history, history_columns)
    if epoch != len(rows):
        raise ValueError(f"checkpoint history has {len(rows)} rows; its epoch is {epoch}")
    weights: Any = data.get("weights")
    slots: Any = data.get("optimizer", {}).get("state", {})
    nulls = _has_null(weights) or _has_null(slots)
    validated = {
        **data,
        "epoch": 0,
        "history": {name: [] for name in history_columns},
        "weights": _zeros_for_nulls(weights) if nulls else weights,
        "optimizer": {**data.get("optimizer", {}), "state": _zeros_for_nulls(slots)}
        if nulls else data.get("optimizer"),
    }
    session = import_session(SessionExport.model_validate(validated), session_id)
    if nulls:
        # In place, past set_weights' finiteness check (the arrays are shared, as there).
        slot_list = [slot for layer in session.model.layers for slot in layer.weight_slots()]
        for (store, key), value in zip(slot_list, weights, strict=True):
            store[key][...] = _nan_array(value)
        optimizer = session.model.optimizer
        for key, saved in slots.items():
            for slot, value in saved.items():
                optimizer.state[key][slot][...] = _nan_array(value)
    if list(session.history.columns) != list(history_columns):
        raise ValueError(
            f"checkpoint history columns {history_columns} differ from the session's "
            f"{session.history.columns}"
        )
    restored = History(session.history.norm_count)
    table = np.full((max(len(rows), 64), len(history_columns)), np.nan)
    table[:len(rows)] = rows
    restored._table, restored._length = table, len(rows)
    session.history = restored
    session.epoch = int(epoch)
    session.status = "paused" if data.get("status") == "running" else session.status
    session.steps_remaining = 0
    return session
