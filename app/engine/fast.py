"""The compiled fast path: a whole training epoch of a plain Dense stack in one numba call.

`Sequential` asks `supports(model)` before every epoch; when True it calls
`train_epoch(model, x, y, batch_size, order)` instead of its numpy step loop. The kernel
(fast_kernels.py) updates the model's own kernel, bias and optimizer-state arrays in place
and the optimizer's `iterations`, `last_update` and the model's `grad_norms` are kept as the
numpy path keeps them, so either path can continue from the other. Both compute the same
formulas in the same order: they agree to ~1e-15 relative per step (matmul summation order
and tanh differ in the last bit), not bit for bit.

Supported (anything else returns False and the numpy path runs): every layer a `Dense` with
units <= FAST_MAX_UNITS and a stateless activation (linear, sigmoid, tanh, relu, leaky_relu,
elu; softmax on the output only); loss mse (any of those outputs), binary_crossentropy on a
sigmoid output, (sparse_)categorical_crossentropy on a softmax output; optimizers SGD
(momentum, nesterov), Adam, RMSprop, Adagrad; l1/l2/l1_l2 regularizers; max_norm on axis 0.
Not updated by the fast path: each Dense's cached `x`, `z`, `a`, `delta` (call `trace` or
`forward_all` for those).

This module is the public surface; the work lives in fast_plan.py (checking a model and packing
it into the kernel's arguments), fast_kernels.py (the numba kernel) and fast_grid.py
(`forward_all(model, points)`, the inference forward for the decision map and the neuron
heatmaps). `warm_up()` loads (or compiles) the kernel; `start_warm_up()` does it for a server
without blocking it.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import fast_grid_kernel as grid_kernel
from app.engine import fast_kernels as kernels
from app.engine import losses
from app.engine.fast_grid import forward_all
from app.engine.fast_plan import FAST_MAX_UNITS, Plan, cached_plan, current_plan

__all__ = [
    "FAST_MAX_UNITS",
    "enabled",
    "forward_all",
    "start_warm_up",
    "supports",
    "train_epoch",
    "warm_up",
]

Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

# Tests and benchmarks set this to False to force the numpy reference path.
enabled: bool = True

# The plan supports() just validated: train_epoch, called right after, skips re-checking it.
_just_checked: Plan | None = None


def supports(model: Any) -> bool:
    """Whether `train_epoch` can run this model; False sends it down the numpy path."""
    global _just_checked
    try:
        plan = current_plan(model)
    except (AttributeError, KeyError, TypeError, ValueError):
        # Anything unexpected in the model's shape means: let the numpy path handle it.
        plan = None
    _just_checked = plan
    return plan is not None


def _read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A read-only view (free): numba types read-only arrays apart, and the datasets' arrays
    are frozen, so always passing read-only inputs keeps the kernel to one compiled signature."""
    if array.flags.writeable:
        array = array.view()
        array.flags.writeable = False
    return array


def _sparse_label_error(label: float, k: int) -> ValueError:
    """The error losses.py raises for a label that is not a class index of k classes."""
    name = losses.SparseCategoricalCrossentropy.name
    if not math.isfinite(label) or label != round(label):
        return ValueError(f"{name}: label {label!r} is not an integer; expected class indices")
    return ValueError(f"{name}: label {label!r} is out of range; expected 0 <= label < {k}")


def train_epoch(
    model: Any, x: Array, y: Array, batch_size: int, order: IndexArray
) -> list[float]:
    """One epoch over x[order] in batches of batch_size; returns each batch's loss (+ penalty).

    x: (n, n_in); y: (n, k) targets, or (n,) class indices for sparse CCE; order: (n,) the
    epoch's sample order. Updates the model and optimizer in place.
    """
    global _just_checked
    plan, _just_checked = _just_checked, None
    if plan is None or plan is not cached_plan(model):
        plan = current_plan(model)
    if plan is None:
        raise ValueError("fast.train_epoch: this model is not supported; check fast.supports first")
    x_c = _read_only(np.ascontiguousarray(x, dtype=np.float64))
    targets = np.ascontiguousarray(y, dtype=np.float64)
    if targets.ndim == 1:
        targets = targets.reshape(-1, 1)
    targets = _read_only(targets)
    order_c = _read_only(np.ascontiguousarray(order, dtype=np.int64))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # Shapes the compiled loops rely on (they do not check bounds).
    n_in, k = int(plan.layout[0, 2]), int(plan.layout[-1, 3])
    if x_c.ndim != 2 or x_c.shape[1] != n_in:
        raise ValueError(f"x must have shape (n, {n_in}), got {x_c.shape}")
    y_width = 1 if plan.loss_code == kernels.SPARSE_CCE_SOFTMAX else k
    if targets.ndim != 2 or targets.shape[1] != y_width:
        raise ValueError(f"y must have shape (n, {y_width}), got {np.shape(y)}")
    n_batches = math.ceil(order_c.shape[0] / batch_size)
    batch_losses = np.empty(n_batches)
    norms = np.empty(plan.layout.shape[0])
    optimizer = plan.optimizer
    iterations = kernels.train_epoch_kernel(
        x_c, targets, order_c, int(batch_size), plan.arrays, plan.layout, plan.coeffs,
        plan.loss_code, plan.opt_code, plan.hyper, optimizer.iterations, batch_losses, norms,
    )
    if iterations <= kernels.BAD_LABEL:
        label = targets[kernels.BAD_LABEL - iterations, 0]
        raise _sparse_label_error(float(label), k)
    if iterations < 0:
        index = kernels.BAD_ORDER - iterations
        raise ValueError(
            f"order[{index}] = {order_c[index]} is not a sample index; expected 0 <= index < "
            f"{min(x_c.shape[0], targets.shape[0])}"
        )
    optimizer.iterations = iterations
    if n_batches:
        for key, last in plan.update_keys:
            optimizer.last_update[key] = last
        model.grad_norms = dict(zip(plan.norm_keys, norms.tolist(), strict=True))
    result: list[float] = batch_losses.tolist()
    return result


def warm_up() -> float:
    """Load the compiled kernel (compiling it on a fresh clone, ~10 s); returns the seconds taken.

    Loading from numba's cache takes ~0.4 s (most of it numba's typed list); servers should
    call `start_warm_up()` instead, which keeps the compile off this process.
    """
    from numba.typed import List

    start = time.perf_counter()
    layout = np.array([[kernels.TANH, 1, 2, 2], [kernels.SIGMOID, 1, 2, 1]], dtype=np.int64)
    sizes = [4, 2, 2, 1]
    arrays = List([np.zeros(size) for _ in range(4) for size in sizes])
    kernels.train_epoch_kernel(
        _read_only(np.zeros((2, 2))), _read_only(np.zeros((2, 1))),
        _read_only(np.arange(2, dtype=np.int64)), 1, arrays, layout,
        np.zeros((2, kernels.N_COEFFS)), kernels.BCE_SIGMOID, kernels.SGD,
        np.zeros(kernels.N_HYPER), 0, np.empty(2), np.empty(2),
    )
    _warm_up_grid()
    return time.perf_counter() - start


def _warm_up_grid() -> None:
    """Load (or compile) the float32 grid forward (fast_grid_kernel.py) with the argument types
    of a frame's call, through forward_all itself."""
    from app.engine.layers import Dense, Input
    from app.engine.model import Sequential

    model = Sequential([Input((2,)), Dense(2, "tanh"), Dense(1, "sigmoid")], seed=0)
    model.build(2)
    points = np.zeros((2, 4), dtype=np.float32)
    points.flags.writeable = False
    forward_all(model, points.T, np.float32)
    # The frame's quantizing, with its argument types (frame_builder._quantize_*).
    block = np.zeros((3, 4), dtype=np.float32)
    grid_kernel.quantize_single(block[0], np.empty(4, np.uint8))
    grid_kernel.quantize_units(block[1:, 1:], np.empty((2, 3), np.uint8), np.empty(2), np.empty(2))


def start_warm_up(load_here: bool = True) -> threading.Thread:
    """Warm the kernel in a daemon thread: compile it in a child process, then load it here
    (only with `load_here`: a web process whose workers are processes never trains, and loading
    numba there left ~1.5 s of GIL work and its objects for every full collection).

    Compiling holds the GIL for ~10 s of CPU (only on a fresh clone or after the kernel's
    source changed); in a child process it neither stalls this process's event loop nor its
    training threads, and fills numba's on-disk cache, from which this process then loads in
    ~0.4 s. If the cache cannot be written, the load here compiles instead (the same result).
    """

    def run() -> None:
        command = [sys.executable, "-c", "from app.engine import fast; fast.warm_up()"]
        root = Path(__file__).resolve().parents[2]
        # Failure is harmless: warm_up() below compiles in-process if the cache is still cold.
        subprocess.run(command, cwd=root, check=False, capture_output=True)
        if load_here:
            warm_up()

    thread = threading.Thread(target=run, name="fast-path-warm-up", daemon=True)
    thread.start()
    return thread
