"""Sequential's inference-mode methods: predict, loss_value, evaluate and the metrics' logs.

Functions taking the model first; model.py binds the public ones as Sequential's methods.
Nothing here trains: every forward runs with training=False (no dropout, BN moving averages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from app.engine import checks
from app.engine.callbacks import Logs
from app.engine.layers import Array
from app.engine.metrics import measure

if TYPE_CHECKING:
    from app.engine.model import Sequential


def predict(model: Sequential, x: npt.ArrayLike, batch_size: int | None = None) -> Array:
    """Outputs in inference mode (n, units); batch_size bounds memory, None = one pass."""
    x_array = model._check_x(x)
    if batch_size is None:
        return model._forward(x_array, training=False)
    size = checks.whole_number("batch_size", batch_size, 1)
    parts = [
        model._forward(x_array[start : start + size], training=False)
        for start in range(0, x_array.shape[0], size)
    ]
    return np.concatenate(parts, axis=0)


def _inference_loss(
    model: Sequential, x: npt.ArrayLike, y: npt.ArrayLike, before: str
) -> tuple[float, Array, Array]:
    """The data loss in inference mode, with the checked targets and the predictions."""
    loss = model._require_loss(before)
    x_array, y_array = model._check_xy(x, y)
    y_pred = model._forward(x_array, training=False)
    return model._data_loss(loss, y_array, y_pred), y_array, y_pred


def loss_value(model: Sequential, x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """The data loss in inference mode, no update; penalties NOT included (see penalty())."""
    value, _, _ = _inference_loss(model, x, y, "computing a loss")
    return value


def evaluate(model: Sequential, x: npt.ArrayLike, y: npt.ArrayLike) -> float | list[float]:
    """Loss (penalties included, as Keras) in inference mode; [loss, *metrics] with metrics."""
    value, y_array, y_pred = _inference_loss(model, x, y, "evaluate")
    value += model.penalty()
    if not model.metrics:
        return value
    return [value, *_metric_values(model, y_array, y_pred)]


def metric_logs(model: Sequential, x: Array, y: Array, prefix: str) -> Logs:
    """Every compiled metric of the inference-mode outputs, keyed prefix + name."""
    if not model.metrics:
        return {}
    y_pred = model._forward(x, training=False)
    values = _metric_values(model, y, y_pred)
    return {prefix + metric: value for metric, value in zip(model.metrics, values, strict=True)}


def _metric_values(model: Sequential, y: Array, y_pred: Array) -> list[float]:
    sparse, activation = model._sparse_labels(), model._output_activation()
    return [measure(metric, y, y_pred, sparse, activation) for metric in model.metrics]
