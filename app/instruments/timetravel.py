"""Time travel over a session's past epochs, by deterministic replay into a checkpoint store.

A live session lives in a worker process and keeps no past weights. Training is deterministic
(same config and same commands give bit-identical weights), so replaying the session's config
from epoch 0 to its current epoch reproduces every epoch's weights; the replay keeps them in a
memory-bounded CheckpointStore. `verified` says whether the replay ended on exactly the live
weights: it does not when settings or weights were changed during the run, and the page says so.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

from app.instruments.checkpoints import Checkpoint, CheckpointStore
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
    limit = get_settings().max_step_epochs
    if live.epoch > limit:
        raise ValueError(
            f"epoch = {live.epoch} is too long to replay; max_step_epochs = {limit}"
        )
    if previous is not None and _extendable(previous, live):
        # The same object, under its own lock, so a frame being drawn from it stays consistent.
        with previous.lock:
            _train_to(previous.session, previous.checkpoints, live.epoch)
            previous.live_epoch = live.epoch
            previous.verified = _matches(previous.session, live)
        return previous
    session = TrainingSession(live.config, live.id)
    store = CheckpointStore() if memory_bytes is None else CheckpointStore(memory_bytes)
    store.add(0, session.model.get_weights())
    _train_to(session, store, live.epoch)
    return Replay(session, store, live.epoch, _matches(session, live))


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


def _train_to(session: TrainingSession, store: CheckpointStore, epoch: int) -> None:
    """Train the replay up to `epoch` (or until it stops by itself), storing each epoch."""
    while session.epoch < epoch and session.status == "paused":
        session.train_one_epoch()
        store.add(session.epoch, session.model.get_weights())
