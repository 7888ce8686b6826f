"""The compiled (numba) fast path for plain Dense stacks; a stub until the kernel lands."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

# Tests and benchmarks flip this to force the numpy reference path.
enabled: bool = True


def supports(model: Any) -> bool:
    """Whether `train_epoch` can run this compiled model; False sends it down the numpy path."""
    return False


def train_epoch(
    model: Any, x: Array, y: Array, batch_size: int, order: npt.NDArray[np.intp]
) -> list[float]:
    """Train one epoch over `order` in batches; returns the per-batch losses."""
    raise NotImplementedError("fast.train_epoch called although fast.supports(model) is False")
