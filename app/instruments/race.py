"""Optimizer race: several optimizers train one net from identical weights on identical batches.

Each racer is a TrainingSession built from the base config with its own optimizer settings, so
it trains, evaluates and reports divergence exactly as a live session does. Two guarantees are
made by construction rather than trusted to the seeds: every racer starts from racer 0's
weights, and before every epoch every racer's minibatch-order generator is set to one shared
state, so all of them see the same permutation of the same points.
"""

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.datasets import featurize
from app.sessions.build import grid_points
from app.sessions.config import Boolean, Number, SessionConfig, merge_config
from app.sessions.frames import quantize
from app.sessions.session import TrainingSession
from app.settings import get_settings

# The optimizer fields a racer may set; everything else comes from the base config.
RACER_FIELDS = (
    "optimizer", "learning_rate", "momentum", "nesterov", "rho", "beta_1", "beta_2",
    "epsilon", "initial_accumulator_value",
)
# A stream of its own, so the race's order never depends on any racer's draws.
ORDER_STREAM = 0x0ACE


def max_racers() -> int:
    """How many racers one race may have (Settings.max_racers)."""
    return get_settings().max_racers


def max_race_step() -> int:
    """Epochs one step request may train (Settings.max_race_step_epochs); a step is a job in a
    worker, trained in slices like a session, so this bounds one job, not the web process."""
    return get_settings().max_race_step_epochs


class RacerCreate(BaseModel):
    """One racer: an optimizer and any of its settings (unset ones come from the config)."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(default=None, max_length=60)
    optimizer: str = "sgd"
    learning_rate: Number | None = None
    momentum: Number | None = None
    nesterov: Boolean | None = None
    rho: Number | None = None
    beta_1: Number | None = None
    beta_2: Number | None = None
    epsilon: Number | None = None
    initial_accumulator_value: Number | None = None


class RaceCreate(BaseModel):
    """The shared session config (data, network, batch size, seed) and the racers."""

    model_config = ConfigDict(extra="forbid")

    config: SessionConfig = Field(default_factory=SessionConfig)
    racers: list[RacerCreate] = Field(min_length=1)


@dataclass(frozen=True)
class RacerInfo:
    """Who a racer is: its label and its full optimizer settings."""

    label: str
    optimizer: dict[str, Any]


@dataclass
class Race:
    """Racers trained in lockstep, epoch by epoch; `step` is the unit of work."""

    base: SessionConfig
    racers: list[RacerInfo]
    sessions: list[TrainingSession]
    order_rng: np.random.Generator
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def epoch(self) -> int:
        """Epochs every racer has been offered."""
        return max(session.epoch for session in self.sessions)

    # The step in progress: epochs not yet finished (the one under way included), the next
    # racer to train in the current epoch, and the shared batch-order state of that epoch.
    _left: int = 0
    _next_racer: int = 0
    _shared: Mapping[str, Any] | None = None

    def step(self, epochs: int) -> int:
        """Train every still-running racer `epochs` more epochs; returns the first new epoch."""
        first = self.begin_step(epochs)
        while not self.advance():
            pass
        return first

    def begin_step(self, epochs: int) -> int:
        """Queue `epochs` more epochs (trained by `advance`); returns the first of them.

        An epoch left unfinished by a cancelled step (some racers trained it, some not) is
        finished first and is the first epoch of this step.
        """
        limit = max_race_step()
        if isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= limit:
            raise ValueError(
                f"epochs = {epochs!r} must be an integer in 1..max_race_step_epochs = {limit}"
            )
        first = self.epoch if self._next_racer else self.epoch + 1
        self._left = (1 if self._next_racer else 0) + epochs
        return first

    def stop_step(self) -> None:
        """Cancel the queued epochs; an epoch some racers already trained stays unfinished."""
        self._left = 1 if self._next_racer else 0

    @property
    def step_done(self) -> bool:
        """No queued epoch is left."""
        return self._left == 0

    @property
    def epochs_left(self) -> int:
        """Queued epochs not finished yet (the one under way included)."""
        return self._left

    def advance(self) -> bool:
        """Train one racer one epoch (the unit of work, as an epoch is a session's); True once
        every queued epoch is done.

        Before every epoch every racer's batch-order generator is set to one shared state; at
        the end of the epoch the shared stream moves on exactly as a model's epoch moves it.
        """
        with self.lock:
            if self._left == 0:
                return True
            if self._next_racer == 0:
                self._shared = self.order_rng.bit_generator.state
            self._skip_stopped()
            if self._next_racer < len(self.sessions):
                session = self.sessions[self._next_racer]
                session.model.order_rng.bit_generator.state = self._shared
                session.train_one_epoch()
                self._next_racer += 1
                self._skip_stopped()
            if self._next_racer >= len(self.sessions):
                # One permutation, as a model's epoch draws.
                self.order_rng.permutation(self.sessions[0].data.x_train.shape[0])
                self._next_racer, self._shared = 0, None
                self._left -= 1
            return self._left == 0

    def _skip_stopped(self) -> None:
        while self._next_racer < len(self.sessions) and self.sessions[
            self._next_racer
        ].status in ("diverged", "finished"):
            self._next_racer += 1

    def nbytes(self) -> int:
        """Memory the race holds (an estimate: data, weights with optimizer state, histories)."""
        return sum(session_bytes(session) for session in self.sessions)

    def curves(self, since: int = 1) -> list[dict[str, Any]]:
        """Per racer: its label, status and the losses/metrics of epochs since..epoch."""
        with self.lock:  # a step of another request may be appending to the histories
            return [self._curve(info, session, since) for info, session in
                    zip(self.racers, self.sessions, strict=True)]

    @staticmethod
    def _curve(info: RacerInfo, session: TrainingSession, since: int) -> dict[str, Any]:
        columns = session.history.to_columns()
        start = max(since, 1) - 1
        return {
            "label": info.label,
            "optimizer": info.optimizer,
            "status": session.status,
            "status_reason": session.status_reason,
            "epoch": session.epoch,
            "weights_hash": session.weights_hash(),
            "first_epoch": start + 1,
            **{name: values[start:] for name, values in columns.items()},
        }

    def grids(self, resolution: int | None = None) -> list[dict[str, Any]]:
        """Per racer: the output over the decision grid, quantized to bytes (base64)."""
        settings = get_settings()
        size = self.base.grid_resolution if resolution is None else resolution
        if isinstance(size, bool) or not 2 <= size <= settings.max_grid_resolution:
            raise ValueError(
                f"grid_resolution = {size!r} must be in 2..max_grid_resolution = "
                f"{settings.max_grid_resolution}"
            )
        points = grid_points(size, settings.grid_extent)
        features = featurize(points, self.base.features)
        multiclass = self.base.resolved_problem() == "multiclass"
        grids = []
        for info, session in zip(self.racers, self.sessions, strict=True):
            with self.lock, np.errstate(all="ignore"):
                output = session.model.predict(features)
            if multiclass:
                values = np.max(output, axis=1)
                classes = np.argmax(output, axis=1).astype(np.uint8)
            else:
                values, classes = output[:, 0], None
            quantized, low, high = quantize(values)
            grids.append({
                "label": info.label,
                "resolution": size,
                "extent": [-settings.grid_extent, settings.grid_extent] * 2,
                "min": low,
                "max": high,
                "output": base64.b64encode(quantized.tobytes()).decode("ascii"),
                "output_class": None if classes is None
                else base64.b64encode(classes.tobytes()).decode("ascii"),
            })
        return grids


def session_bytes(session: TrainingSession) -> int:
    """An estimate of the memory one session holds: its data and features, its weights three
    times (weights, gradients, optimizer slots) and its history table."""
    data = session.data
    arrays = (data.x_train, data.x_test, data.y_train, data.y_test)
    weights = sum(int(w.nbytes) for w in session.model.get_weights())
    return sum(int(a.nbytes) for a in arrays) + 3 * weights + int(session.history._table.nbytes)


def _label(racer: dict[str, Any], index: int, taken: set[str]) -> str:
    """The racer's label, or its optimizer and rate, made unique."""
    label = str(racer.get("label") or f"{racer.get('optimizer', 'sgd')} "
                f"lr={racer.get('learning_rate', 'default')}")
    unique, count = label, 1
    while unique in taken:
        count += 1
        unique = f"{label} ({count})"
    taken.add(unique)
    return unique


def start_race(base: SessionConfig, racers: list[dict[str, Any]]) -> Race:
    """Build one session per racer from `base` plus that racer's optimizer fields."""
    limit = max_racers()
    if not 1 <= len(racers) <= limit:
        raise ValueError(f"racers has {len(racers)} entries; expected 1..max_racers = {limit}")
    configs: list[SessionConfig] = []
    infos: list[RacerInfo] = []
    taken: set[str] = set()
    for index, racer in enumerate(racers):
        unknown = sorted(set(racer) - {*RACER_FIELDS, "label"})
        if unknown:
            raise ValueError(
                f"racers[{index}] has unknown field(s) {', '.join(unknown)}; expected: "
                f"label, {', '.join(RACER_FIELDS)}"
            )
        changes = {k: v for k, v in racer.items() if k != "label"}
        try:
            config = merge_config(base, changes)
        except ValueError as error:
            raise ValueError(f"racers[{index}]: {error}") from error
        configs.append(config)
        optimizer = {name: getattr(config, name) for name in RACER_FIELDS}
        infos.append(RacerInfo(_label(racer, index, taken), optimizer))
    sessions = [
        TrainingSession(config, f"race-{index}") for index, config in enumerate(configs)
    ]
    # Identical initial weights by construction, whatever each optimizer's build does.
    initial = sessions[0].model.get_weights()
    for session in sessions[1:]:
        session.model.set_weights(initial)
    order_rng = np.random.default_rng([base.seed, ORDER_STREAM])
    return Race(base, infos, sessions, order_rng)
