"""Time travel over a session's past epochs, restored from the checkpoints it recorded.

A live session in a worker records its own past (app/instruments/checkpoints.py): before each
epoch, when the epoch is a multiple of the store's stride, the full state the epoch starts from
(weights, optimizer slots and iterations, every RNG state, early stopping, the config in force).
Nothing is replayed: a frame of a past epoch shows exactly the weights the run had then, and a
fork restores that state, so it continues bit-identically to the original run (as long as the
fork keeps the settings), even when settings were changed mid-run.

`Replay` (the name kept from when this was a replay) is the view a `POST .../timetravel` opens:
the live session, its store and a scratch session to draw frames of past configs. The live
epoch itself is always a stop (captured when asked), whatever the stride.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

from app.instruments.checkpoints import Checkpoint, CheckpointStore, attach, capture
from app.instruments.race import session_bytes
from app.sessions.config import LIVE_FIELDS, merge_config
from app.sessions.export import FORMAT, export_nested
from app.sessions.frame_builder import build_part
from app.sessions.frames import EPOCH_COLUMNS, encode_frame
from app.sessions.session import TrainingSession

# A fork keeps the weights, so it may change anything that does not reshape them.
FORK_FIELDS = LIVE_FIELDS | {"optimizer"}


@dataclass
class Replay:
    """The time-travel view of a live session: its recorded checkpoints and its epoch now."""

    session: TrainingSession  # the live session
    checkpoints: CheckpointStore
    lock: threading.Lock = field(default_factory=threading.Lock)
    _scratch: TrainingSession | None = None  # draws frames of past configs

    @property
    def live_epoch(self) -> int:
        """The live session's epoch now."""
        return self.session.epoch

    @property
    def verified(self) -> bool:
        """Always: every stop is a recorded state of the live run, not a replay of it."""
        return True

    def nbytes(self) -> int:
        """Memory the view may hold beyond the live session's own recording: a scratch session
        to draw frames (as large as the live one; never 0, which the board reads as none)."""
        return session_bytes(self._scratch if self._scratch is not None else self.session)

    def epochs(self) -> list[int]:
        """The slider's stops: every stored epoch and the live one."""
        stored = self.checkpoints.epochs
        return stored if stored and stored[-1] == self.live_epoch else [*stored, self.live_epoch]

    def summary(self) -> dict[str, Any]:
        """What the slider needs: the epochs it can show and how they were kept."""
        with self.lock:
            return {
                "session_id": self.session.id,
                "live_epoch": self.live_epoch,
                "replayed_epoch": self.live_epoch,
                "verified": True,
                "epochs": self.epochs(),
                "stride": self.checkpoints.stride,
                "checkpoint_bytes": self.checkpoints.nbytes,
                "checkpoint_memory_bytes": self.checkpoints.memory_bytes,
                "history": self.session.history.to_columns(),
            }

    def checkpoint(self, epoch: int) -> Checkpoint:
        """The full state at the stop nearest to `epoch` (the live state for the live epoch)."""
        live = self.live_epoch
        if len(self.checkpoints) == 0:
            return capture(self.session)
        nearest = self.checkpoints.nearest(epoch)
        if nearest == live or abs(live - epoch) < abs(nearest - epoch):
            return capture(self.session)
        return self.checkpoints.get(nearest)

    def summary_json(self) -> bytes:
        """`summary()` as JSON bytes, encoded here in the worker: a long run's history (30,000
        epochs x 7 columns) took the web process's event loop ~100 ms to encode."""
        return json.dumps(self.summary(), allow_nan=False).encode()

    def frame_at(self, epoch: int) -> bytes:
        """A binary frame (docs/protocol.md layout) of the network at the stop nearest to
        `epoch`: weights, output grid and neuron grids, as the page renders a live frame."""
        with self.lock:
            checkpoint = self.checkpoint(epoch)
            config = checkpoint.config or self.session.config
            scratch = self._scratch
            if scratch is None or scratch.config != config:
                scratch = self._scratch = TrainingSession(config, self.session.id)
            scratch.model.set_weights(checkpoint.weights)
            scratch.epoch = checkpoint.epoch
            part = build_part(scratch, scratch.epoch + 1)
        header = {
            **part.header,
            "epoch": checkpoint.epoch,
            "metrics": self._metrics(checkpoint.epoch),
            "epochs_first": checkpoint.epoch + 1,
            "time_travel": {
                "requested_epoch": epoch,
                "epoch": checkpoint.epoch,
                "stride": self.checkpoints.stride,
                "verified": True,
            },
        }
        return encode_frame(header, part.sections)

    def _metrics(self, epoch: int) -> dict[str, float | None]:
        history = self.session.history
        if not 0 < epoch <= len(history):
            return dict.fromkeys(EPOCH_COLUMNS)
        values = [float(v) for v in history._table[epoch - 1, : len(EPOCH_COLUMNS)]]
        return {name: v if math.isfinite(v) else None
                for name, v in zip(EPOCH_COLUMNS, values, strict=True)}

    def fork_export(self, epoch: int, changes: dict[str, Any]) -> dict[str, Any]:
        """A SessionExport of a new session: the full state at the stop nearest to `epoch`
        (optimizer and RNG states included: it continues as the original did), the history up
        to there, and the config with `changes` (a new optimizer starts with fresh slots)."""
        refused = sorted(set(changes) - FORK_FIELDS)
        if refused:
            raise ValueError(
                f"a fork keeps the weights, so it cannot change {', '.join(refused)}; "
                f"it may change: {', '.join(sorted(FORK_FIELDS))}"
            )
        with self.lock:
            checkpoint = self.checkpoint(epoch)
            columns = self.session.history.to_columns()
        return checkpoint_export(checkpoint, columns, changes)


def checkpoint_export(
    checkpoint: Checkpoint, columns: dict[str, list[float | None]],
    changes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The SessionExport dict of a complete checkpoint, its history cut to its epoch, paused."""
    if checkpoint.config is None:
        raise ValueError(f"the checkpoint of epoch {checkpoint.epoch} holds weights only")
    config = merge_config(checkpoint.config, changes or {})
    same_optimizer = config.optimizer == checkpoint.config.optimizer
    best = checkpoint.best_test_loss
    return {
        "format": FORMAT,
        "version": 1,
        "config": config.model_dump(),
        "status": "paused",
        "status_reason": None,
        "epoch": checkpoint.epoch,
        "weights": [export_nested(w) for w in checkpoint.weights],
        "optimizer": {
            "iterations": checkpoint.iterations if same_optimizer else 0,
            "state": {
                key: {slot: export_nested(value) for slot, value in slots.items()}
                for key, slots in checkpoint.optimizer.items()
            } if same_optimizer else {},
        },
        "rng": checkpoint.rng,
        "history": {name: values[: checkpoint.epoch] for name, values in columns.items()},
        "early_stopping": {"best": best if math.isfinite(best) else None,
                           "wait": checkpoint.wait},
    }


def open_replay(live: TrainingSession, previous: Replay | None = None) -> Replay:
    """The time-travel view of `live` (the previous one while it views the same session)."""
    if previous is not None and previous.session is live:
        return previous
    return Replay(live, attach(live))


@dataclass
class ReplayRun:
    """Kept for the job interface (worker_jobs.ReplayJob): opening the view is one step."""

    replay: Replay

    @property
    def session(self) -> TrainingSession:
        """The live session viewed."""
        return self.replay.session

    @property
    def checkpoints(self) -> CheckpointStore:
        """Its recorded checkpoints."""
        return self.replay.checkpoints

    @property
    def live_epoch(self) -> int:
        """The live epoch (the stops end there)."""
        return self.replay.live_epoch

    @property
    def done(self) -> int:
        """Epochs covered (all of them: nothing is replayed)."""
        return self.live_epoch

    @property
    def total(self) -> int:
        """Epochs to cover."""
        return self.live_epoch

    def advance(self) -> bool:
        """Nothing to replay: done at once."""
        return True

    @property
    def finished(self) -> bool:
        """Always."""
        return True

    def finish(self) -> Replay:
        """The view."""
        return self.replay

    def nbytes(self) -> int:
        """Memory the view holds."""
        return self.replay.nbytes()


def begin_replay(live: TrainingSession, previous: Replay | None = None) -> ReplayRun:
    """Open the time-travel view of `live` (a job of one step; see ReplayJob)."""
    return ReplayRun(open_replay(live, previous))


def replay(live: TrainingSession, previous: Replay | None = None) -> Replay:
    """The time-travel view of `live`, at once."""
    return begin_replay(live, previous).finish()
