"""Sequential's training over epochs: minibatch order, the compiled fast path, and fit.

Functions taking the model first; model.py binds train_epoch and fit as Sequential's methods.
One step on one batch is the model's own `_train_step`; an epoch runs it over the minibatches
(or hands the whole epoch to the compiled kernel in fast.py when that supports the model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from app.engine import checks, fast
from app.engine.callbacks import Callback, History, Logs
from app.engine.inference import metric_logs
from app.engine.layers import Array

if TYPE_CHECKING:
    from app.engine.model import Sequential

IndexArray = npt.NDArray[np.intp]


def run_epoch(
    model: Sequential,
    x: Array,
    y: Array,
    batch_size: int,
    shuffle: bool,
    callbacks: Sequence[Callback] = (),
) -> float:
    """One pass over the data in minibatches; returns the size-weighted mean batch loss."""
    model._require_training_setup()
    n = x.shape[0]
    order: IndexArray = model.order_rng.permutation(n) if shuffle else np.arange(n)
    starts = range(0, n, batch_size)
    if fast.enabled and fast.supports(model):
        batch_losses = fast.train_epoch(model, x, y, batch_size, order)
    else:
        batch_losses = []
        for start in starts:
            batch = order[start : start + batch_size]
            batch_losses.append(model._train_step(x[batch], y[batch]))
    sizes = [min(batch_size, n - start) for start in starts]
    for index, value in enumerate(batch_losses):
        for callback in callbacks:
            callback.on_batch_end(index, {"loss": value})
    return float(np.dot(batch_losses, sizes) / n)


def train_epoch(
    model: Sequential, x: npt.ArrayLike, y: npt.ArrayLike, batch_size: int, shuffle: bool = True
) -> float:
    """Train one epoch (the live sessions' unit of work); returns its mean loss."""
    x_array, y_array = model._check_xy(x, y)
    return run_epoch(
        model, x_array, y_array, checks.whole_number("batch_size", batch_size, 1), shuffle
    )


def fit(
    model: Sequential,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    validation_data: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    validation_split: float = 0.0,
    callbacks: Sequence[Callback] | None = None,
    verbose: int = 0,
) -> History:
    """Train for `epochs`; History holds loss, val_loss and metrics per epoch.

    validation_split takes the LAST fraction of x, y before any shuffling (Keras).
    Training metrics are measured at the end of each epoch in inference mode, so the
    compiled fast path and the numpy path report the same numbers.
    """
    x_array, y_array = model._check_xy(x, y)
    epochs = checks.whole_number("epochs", epochs, 0)
    batch_size = checks.whole_number("batch_size", batch_size, 1)
    x_array, y_array, val = _split_validation(
        model, x_array, y_array, validation_data, validation_split
    )
    model._require_training_setup()
    history = History()
    all_callbacks: list[Callback] = [history, *(callbacks or [])]
    for callback in all_callbacks:
        callback.set_model(model)
    model.stop_training = False
    for callback in all_callbacks:
        callback.on_train_begin()
    for epoch in range(epochs):
        for callback in all_callbacks:
            callback.on_epoch_begin(epoch)
        logs: Logs = {
            "loss": run_epoch(model, x_array, y_array, batch_size, shuffle, all_callbacks)
        }
        if model.metrics:
            logs.update(metric_logs(model, x_array, y_array, prefix=""))
        if val is not None:
            logs["val_loss"] = model.loss_value(*val) + model.penalty()
            logs.update(metric_logs(model, *val, prefix="val_"))
        for callback in all_callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for callback in all_callbacks:
        callback.on_train_end()
    model.history = history
    return history


def _split_validation(
    model: Sequential,
    x: Array,
    y: Array,
    validation_data: tuple[npt.ArrayLike, npt.ArrayLike] | None,
    validation_split: float,
) -> tuple[Array, Array, tuple[Array, Array] | None]:
    """The training x, y and the validation pair: validation_data if given, else the LAST
    validation_split fraction of x, y (taken before any shuffling, as Keras), else None."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if validation_data is not None:
        return x, y, model._check_xy(*validation_data)
    if validation_split == 0.0:
        return x, y, None
    n = x.shape[0]
    split_at = math.floor(n * (1.0 - validation_split))
    if split_at in (0, n):
        raise ValueError(
            f"validation_split={validation_split} of {n} samples leaves an empty "
            "training or validation set"
        )
    return x[:split_at], y[:split_at], (x[split_at:], y[split_at:])
