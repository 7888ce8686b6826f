"""Training callbacks with Keras's hook names: Callback, History, EarlyStopping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

Logs = dict[str, float]


class TrainableModel(Protocol):
    """What a callback may touch on the model it observes."""

    stop_training: bool

    def get_weights(self) -> list[npt.NDArray[np.float64]]: ...

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None: ...


class Callback:
    """Base callback: every hook does nothing; `model` is set by fit before training."""

    def __init__(self) -> None:
        self.model: TrainableModel | None = None

    def set_model(self, model: TrainableModel) -> None:
        """Attach the model being trained."""
        self.model = model

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Called once before the first epoch."""

    def on_train_end(self, logs: Logs | None = None) -> None:
        """Called once after the last epoch."""

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        """Called before each epoch."""

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """Called after each epoch with its loss, val_loss and metrics."""

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        """Called after each training batch with its loss."""


class History(Callback):
    """Records every epoch's logs: history["loss"][k] is epoch k's loss."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Start a fresh record (Keras: one History per fit call)."""
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """Append this epoch's values."""
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    Keras 3 semantics: an epoch improves when current - min_delta beats the best (min mode:
    current + min_delta < best); `wait` counts epochs since the last improvement and training
    stops once wait >= patience (never at epoch 0). With restore_best_weights, the weights of
    the best epoch are restored when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping mode must be 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping patience must be an integer >= 0, got {patience!r}")
        if not math.isfinite(min_delta):
            raise ValueError(f"EarlyStopping min_delta must be finite, got {min_delta!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = abs(float(min_delta))
        if mode == "auto":
            # Keras infers the direction from the metric: accuracy goes up, losses go down.
            metric = monitor.removeprefix("val_")
            mode = "max" if metric in ("accuracy", "acc") else "min"
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self.best = math.inf if mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: list[npt.NDArray[np.float64]] | None = None

    def _is_improvement(self, current: float, reference: float) -> bool:
        """current beats reference by more than min_delta in the monitored direction."""
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def on_train_begin(self, logs: Logs | None = None) -> None:
        """Reset, so one instance can serve several fits."""
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights = None

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        """Track the best value; ask the model to stop once patience is used up."""
        assert self.model is not None
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r}, which is not in the epoch logs "
                f"(available: {', '.join(sorted(logs)) or 'none'}); "
                "val_* needs validation_data or validation_split"
            )
        current = logs[self.monitor]
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        """Restore the best epoch's weights when asked to."""
        if self.restore_best_weights and self.best_weights is not None:
            assert self.model is not None
            self.model.set_weights(self.best_weights)
