"""Metrics that fit and evaluate report next to the loss: accuracy, mae and mse."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.engine.layers import Array

METRICS = ("accuracy", "mae", "mse")


def check_metric_names(metrics: Sequence[str] | None) -> list[str]:
    """The metric names as a list; ValueError for a name not in METRICS."""
    names = [metrics] if isinstance(metrics, str) else list(metrics or [])
    for metric in names:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of: {', '.join(METRICS)}")
    return names


def measure(
    metric: str, y: Array, y_pred: Array, sparse: bool, output_activation: str | None
) -> float:
    """One metric of y_pred (n, units) against y: (n, units), or (n,) labels when sparse."""
    if metric == "accuracy":
        if sparse:
            return float(np.mean(np.argmax(y_pred, axis=1) == y.astype(np.intp)))
        if y_pred.shape[1] == 1:
            # A tanh output separates labels -1/1 at 0; probabilities separate at 0.5.
            threshold = 0.0 if output_activation == "tanh" else 0.5
            return float(np.mean((y_pred > threshold) == (y > threshold)))
        return float(np.mean(np.argmax(y_pred, axis=1) == np.argmax(y, axis=1)))
    if sparse:
        raise ValueError(f"metric {metric!r} needs one-hot or numeric targets, not labels")
    if metric == "mae":
        return float(np.mean(np.abs(y_pred - y)))
    return float(np.mean((y_pred - y) ** 2))
