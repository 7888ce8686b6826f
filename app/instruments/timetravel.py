"""Time travel over a session's past epochs, by deterministic replay into a checkpoint store.

A live session lives in a worker process and keeps no past weights. Training is deterministic
(same config and same commands give bit-identical weights), so replaying the session's config
from epoch 0 to its current epoch reproduces every epoch's weights; the replay keeps them in a
memory-bounded CheckpointStore. `verified` says whether the replay ended on exactly the live
weights: it does not when settings or weights were changed during the run, and the page says so.
"""

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from app.instruments.checkpoints import Checkpoint, CheckpointStore
from app.instruments.race import session_bytes
from app.sessions.config import LIVE_FIELDS, merge_config
from app.sessions.export import export_session
from app.sessions.frame_builder import build_part
from app.sessions.frames import EPOCH_COLUMNS, encode_frame
from app.sessions.history import History
from app.sessions.session import TrainingSession
from app.settings import get_settings

# A fork keeps the weights, so it may change anything that does not reshape them.
FORK_FIELDS = LIVE_FIELDS | {"optimizer"}


@dataclass
class Replay:
    """A session replayed epoch by epoch, its checkpoints, and whether it matched the live run."""

    session: TrainingSession
    checkpoints: CheckpointStore
    live_epoch: int
    verified: bool
    lock: threading.Lock = field(default_factory=threading.Lock)

    def nbytes(self) -> int:
        """Memory the replay holds: its checkpoints and its session."""
        return self.checkpoints.nbytes + session_bytes(self.session)

    def summary(self) -> dict[str, Any]:
        """What the slider needs: the epochs it can show and how they were kept."""
        with self.lock:  # a new recording may be extending this replay meanwhile
            return self._summary()

    def _summary(self) -> dict[str, Any]:
        return {
            "session_id": self.session.id,
            "live_epoch": self.live_epoch,
            "replayed_epoch": self.session.epoch,
            "verified": self.verified,
            "epochs": self.checkpoints.epochs,
            "stride": self.checkpoints.stride,
            "checkpoint_bytes": self.checkpoints.nbytes,
            "checkpoint_memory_bytes": self.checkpoints.memory_bytes,
            "history": self.session.history.to_columns(),
        }

    def frame_at(self, epoch: int) -> bytes:
        """A binary frame (docs/protocol.md layout) of the network at the stored epoch nearest
        to `epoch`: weights, output grid and neuron grids, as the page renders a live frame."""
        with self.lock:
            checkpoint = self.checkpoints.get(epoch)
            live_weights = self.session.model.get_weights()
            try:
                self.session.model.set_weights(checkpoint.weights)
                part = build_part(self.session, self.session.epoch + 1)
            finally:
                self.session.model.set_weights(live_weights)
        header = {
            **part.header,
            "epoch": checkpoint.epoch,
            "metrics": self._metrics(checkpoint.epoch),
            "epochs_first": checkpoint.epoch + 1,
            "time_travel": {
                "requested_epoch": epoch,
                "epoch": checkpoint.epoch,
                "stride": self.checkpoints.stride,
                "verified": self.verified,
            },
        }
        return encode_frame(header, part.sections)

    def _metrics(self, epoch: int) -> dict[str, float | None]:
        columns = self.session.history.to_columns()
        if epoch == 0:
            return dict.fromkeys(EPOCH_COLUMNS)
        return {name: columns[name][epoch - 1] for name in EPOCH_COLUMNS}

    def fork_export(self, epoch: int, changes: dict[str, Any]) -> dict[str, Any]:
        """A SessionExport of a new session: the config with `changes`, the stored weights
        nearest to `epoch`, the history up to there, a fresh optimizer state."""
        refused = sorted(set(changes) - FORK_FIELDS)
        if refused:
            raise ValueError(
                f"a fork keeps the weights, so it cannot change {', '.join(refused)}; "
                f"it may change: {', '.join(sorted(FORK_FIELDS))}"
            )
        with self.lock:
            checkpoint: Checkpoint = self.checkpoints.get(epoch)
            columns = self.session.history.to_columns()
            config = merge_config(self.session.config, changes)
        fork = TrainingSession(config, f"{self.session.id}-fork")
        fork.model.set_weights(checkpoint.weights)
        fork.epoch = checkpoint.epoch
        fork.history = History.from_columns(
            {name: values[: checkpoint.epoch] for name, values in columns.items()}
        )
        return export_session(fork)


def replay(
    live: TrainingSession, previous: Replay | None = None, memory_bytes: int | None = None
) -> Replay:
    """Replay `live`'s config from epoch 0 to its epoch, keeping checkpoints within the bound.

    A `previous` replay of the same session that matched the live run and has the same config
    is extended from where it stopped instead of starting again. `memory_bytes` defaults to
    Settings.checkpoint_memory_bytes.
    """
    run = begin_replay(live, previous, memory_bytes)
    while not run.advance():
        pass
    return run.finish()


@dataclass
class ReplayRun:
    """A replay under way, trained epoch by epoch (`advance`) in a worker's slices.

    The live run is recorded when the replay starts (its epoch and weights), so the live
    session may go on training meanwhile: `verified` compares with that record.
    """

    session: TrainingSession
    checkpoints: CheckpointStore
    live_epoch: int
    live_hash: str
    previous: Replay | None  # the replay being extended, or None for a new one
    first_epoch: int  # where this run started (0, or where the previous one stopped)

    @property
    def done(self) -> int:
        """Epochs replayed by this run."""
        return self.session.epoch - self.first_epoch

    @property
    def total(self) -> int:
        """Epochs this run has to replay."""
        return self.live_epoch - self.first_epoch

    def advance(self) -> bool:
        """Replay one epoch (storing it); True once the replay reached the live epoch or the
        session stopped by itself (diverged, finished)."""
        if self.finished:
            return True
        lock = self.previous.lock if self.previous is not None else None
        with lock or contextlib.nullcontext():
            self.session.train_one_epoch()
            self.checkpoints.add(self.session.epoch, self.session.model.get_weights())
        return self.finished

    @property
    def finished(self) -> bool:
        """Nothing is left to replay."""
        return self.session.epoch >= self.live_epoch or self.session.status != "paused"

    def finish(self) -> Replay:
        """The replay: the previous one extended, or a new one."""
        verified = (
            self.session.epoch == self.live_epoch and self.session.weights_hash() == self.live_hash
        )
        if self.previous is not None:
            with self.previous.lock:
                self.previous.live_epoch = self.live_epoch
                self.previous.verified = verified
            return self.previous
        return Replay(self.session, self.checkpoints, self.live_epoch, verified)

    def nbytes(self) -> int:
        """Memory the replay holds: its checkpoints and its session."""
        return self.checkpoints.nbytes + session_bytes(self.session)


def begin_replay(
    live: TrainingSession, previous: Replay | None = None, memory_bytes: int | None = None
) -> ReplayRun:
    """A replay of `live` up to its epoch now, to be trained by `ReplayRun.advance`."""
    limit = get_settings().max_step_epochs
    if live.epoch > limit:
        raise ValueError(
            f"epoch = {live.epoch} is too long to replay; max_step_epochs = {limit}"
        )
    if previous is not None and _extendable(previous, live):
        # The same object, under its own lock, so a frame being drawn from it stays consistent.
        return ReplayRun(
            previous.session, previous.checkpoints, live.epoch, live.weights_hash(), previous,
            previous.session.epoch,
        )
    session = TrainingSession(live.config, live.id)
    store = CheckpointStore() if memory_bytes is None else CheckpointStore(memory_bytes)
    store.add(0, session.model.get_weights())
    return ReplayRun(session, store, live.epoch, live.weights_hash(), None, 0)


def _matches(session: TrainingSession, live: TrainingSession) -> bool:
    """Whether the replay stands exactly where the live session does."""
    return session.epoch == live.epoch and session.weights_hash() == live.weights_hash()


def _extendable(previous: Replay, live: TrainingSession) -> bool:
    """Whether `live` is `previous`'s run gone further (same config, matched, not past it)."""
    return (
        previous.verified
        and previous.session.config == live.config
        and previous.session.epoch <= live.epoch
        and previous.session.status == "paused"
    )
