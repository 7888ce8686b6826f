"""Checks of the model's arguments: whole numbers and targets, each error naming what arrived."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.engine.layers import Array


def whole_number(name: str, value: object, minimum: int) -> int:
    """`value` as an int when it is an integer >= minimum (a bool is refused); else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(value)


def as_targets(y: npt.ArrayLike, n: int, units: int, sparse: bool) -> Array:
    """y as a finite array: (n, units), or (n,) class labels when the loss is sparse."""
    array = np.asarray(y, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("y contains NaN or inf; expected finite numbers")
    if sparse:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.shape != (n,):
            raise ValueError(f"y must hold {n} integer labels, shape ({n},), got {array.shape}")
        return array
    if array.ndim == 1 and units == 1:
        array = array.reshape(-1, 1)
    if array.shape != (n, units):
        raise ValueError(f"y must have shape ({n}, {units}) to match the output, got {array.shape}")
    return array
