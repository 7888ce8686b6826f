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

`forward_all(model, points)` is the inference forward for grids (the decision map and the
neuron heatmaps): numpy with preallocated unit-major buffers, because over 10,000 points
numpy's SIMD tanh (~1.6 ns) beats any compiled loop tried here (libm tanh ~20 ns, a
vectorized Cephes tanh ~4 ns). `warm_up()` loads (or compiles) the kernel;
`start_warm_up()` does it for a server without blocking it.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, constraints, losses, optimizers, regularizers
from app.engine import fast_kernels as kernels
from app.engine.layers import Dense, Layer

Array = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

# Tests and benchmarks set this to False to force the numpy reference path.
enabled: bool = True

# Above ~64 units a BLAS matmul beats the kernel's scalar loops; wider nets stay on numpy.
FAST_MAX_UNITS = 64

_ACTIVATION_CODES: dict[type[activations.ActivationFunction], int] = {
    activations.Linear: kernels.LINEAR,
    activations.Sigmoid: kernels.SIGMOID,
    activations.Tanh: kernels.TANH,
    activations.ReLU: kernels.RELU,
    activations.LeakyReLU: kernels.LEAKY_RELU,
    activations.ELU: kernels.ELU,
    activations.Softmax: kernels.SOFTMAX,
}
_OPTIMIZER_CODES: dict[type[optimizers.Optimizer], int] = {
    optimizers.SGD: kernels.SGD,
    optimizers.Adam: kernels.ADAM,
    optimizers.RMSprop: kernels.RMSPROP,
    optimizers.Adagrad: kernels.ADAGRAD,
}
# Optimizer state slots in the kernel's order (slot 0, slot 1).
_SLOT_NAMES: dict[int, tuple[str, str]] = {
    kernels.SGD: ("velocity", ""),
    kernels.ADAM: ("m", "v"),
    kernels.RMSPROP: ("accumulator", "momentum"),
    kernels.ADAGRAD: ("accumulator", ""),
}


@dataclass
class _Plan:
    """A model mapped onto the kernel's arguments, valid while the checked identities hold."""

    layers: list[Layer]
    optimizer: optimizers.Optimizer
    loss: losses.Loss
    loss_code: int
    opt_code: int
    layout: npt.NDArray[np.int64]
    coeffs: Array
    hyper: Array
    arrays: Any  # numba.typed.List of flat 1-D views
    # (dict, key, value) triples that must still hold for the plan to be valid.
    checks: list[tuple[dict[str, Any], str, Any]]
    parts: list[tuple[Dense, list[Any]]]  # per layer: objects whose identity fixes the layout
    norm_keys: list[str]
    update_keys: list[tuple[str, Array]] = field(default_factory=list)
    coeff_values: tuple[float, ...] = ()
    hyper_values: tuple[float, ...] = ()


_plans: weakref.WeakKeyDictionary[Any, _Plan] = weakref.WeakKeyDictionary()


def _activation_code(layer: Layer, is_output: bool) -> int | None:
    """The kernel code of a Dense layer's activation, or None when unsupported."""
    if type(layer) is not Dense or layer.activation is None:
        return None
    code = _ACTIVATION_CODES.get(type(layer.activation))
    if code == kernels.SOFTMAX and not is_output:
        return None
    return code


def _loss_code(loss: losses.Loss, output_code: int) -> int | None:
    """The kernel's loss code for this loss on this output activation, or None."""
    kind = type(loss)
    if kind is losses.MeanSquaredError:
        return kernels.MSE
    if kind is losses.BinaryCrossentropy and output_code == kernels.SIGMOID:
        return kernels.BCE_SIGMOID
    if kind is losses.CategoricalCrossentropy and output_code == kernels.SOFTMAX:
        return kernels.CCE_SOFTMAX
    if kind is losses.SparseCategoricalCrossentropy and output_code == kernels.SOFTMAX:
        return kernels.SPARSE_CCE_SOFTMAX
    return None


def _penalty_rates(regularizer: regularizers.Regularizer | None) -> tuple[float, float] | None:
    """(l1, l2) of a built-in regularizer, (0, 0) for none, None when unknown."""
    if regularizer is None:
        return 0.0, 0.0
    if type(regularizer) is regularizers.L1:
        return float(regularizer.l1), 0.0
    if type(regularizer) is regularizers.L2:
        return 0.0, float(regularizer.l2)
    if type(regularizer) is regularizers.L1L2:
        return float(regularizer.l1), float(regularizer.l2)
    return None


def _max_norm_value(constraint: constraints.Constraint | None, kernel: Array) -> float | None:
    """max_value of an axis-0 MaxNorm, 0 for none, None when unsupported."""
    if constraint is None:
        return 0.0
    if type(constraint) is not constraints.MaxNorm or constraint.axis not in (0, -kernel.ndim):
        return None
    return float(constraint.max_value)


def _coeff_values(plan_layers: list[Layer]) -> tuple[float, ...] | None:
    """Per layer: activation alpha, kernel l1, l2, bias l1, l2, max-norm; None if unsupported."""
    values: list[float] = []
    for layer in plan_layers:
        assert isinstance(layer, Dense)
        kernel_rates = _penalty_rates(layer.kernel_regularizer)
        bias_rates = _penalty_rates(layer.bias_regularizer)
        max_value = _max_norm_value(layer.kernel_constraint, layer.params["kernel"])
        if kernel_rates is None or bias_rates is None or max_value is None:
            return None
        alpha = float(getattr(layer.activation, "alpha", 0.0))
        values += (alpha, *kernel_rates, *bias_rates, max_value)
    return tuple(values)


def _hyper_values(optimizer: optimizers.Optimizer) -> tuple[float, ...]:
    """The optimizer's numbers in the kernel's order (any may change between epochs)."""
    return (
        optimizer.learning_rate,
        float(getattr(optimizer, "momentum", 0.0)),
        1.0 if getattr(optimizer, "nesterov", False) else 0.0,
        float(getattr(optimizer, "beta_1", 0.0)),
        float(getattr(optimizer, "beta_2", 0.0)),
        float(getattr(optimizer, "epsilon", 0.0)),
        float(getattr(optimizer, "rho", 0.0)),
    )


def _refresh_numbers(plan: _Plan) -> bool:
    """Copy changed rates into the plan's arrays; False when a layer is no longer supported."""
    coeff_values = _coeff_values(plan.layers)
    if coeff_values is None:
        return False
    # Writing numpy scalars costs ~0.1 us each: only when something changed.
    if coeff_values != plan.coeff_values:
        plan.coeffs[...] = np.array(coeff_values).reshape(plan.coeffs.shape)
        plan.coeff_values = coeff_values
    hyper_values = _hyper_values(plan.optimizer)
    if hyper_values != plan.hyper_values:
        plan.hyper[...] = hyper_values
        plan.hyper_values = hyper_values
    return True


def _layer_parts(layer: Dense) -> list[Any]:
    """Objects whose identity fixes this layer's row of the layout."""
    return [
        layer.activation,
        layer.kernel_regularizer,
        layer.bias_regularizer,
        layer.kernel_constraint,
        layer.use_bias,
    ]


def _build_plan(model: Any) -> _Plan | None:
    """Map the model onto the kernel, creating missing optimizer state as the optimizer would."""
    layers: list[Layer] = list(getattr(model, "layers", []))
    optimizer = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None)
    if not layers or optimizer is None or loss is None or not getattr(model, "built", False):
        return None
    opt_code = _OPTIMIZER_CODES.get(type(optimizer))
    codes = [_activation_code(layer, i == len(layers) - 1) for i, layer in enumerate(layers)]
    if opt_code is None or any(code is None for code in codes):
        return None
    output_code = codes[-1]
    assert output_code is not None
    loss_code = _loss_code(loss, output_code)
    if loss_code is None:
        return None
    layout = np.zeros((len(layers), kernels.N_LAYOUT), dtype=np.int64)
    dense_layers: list[Dense] = []
    for index, (layer, code) in enumerate(zip(layers, codes, strict=True)):
        assert isinstance(layer, Dense) and code is not None
        kernel = layer.params.get("kernel")
        if (
            kernel is None
            or kernel.dtype != np.float64
            or not kernel.flags.c_contiguous
            or kernel.ndim != 2
            or kernel.shape[1] > FAST_MAX_UNITS
            or set(layer.params) != ({"kernel", "bias"} if layer.use_bias else {"kernel"})
        ):
            return None
        bias = layer.params.get("bias")
        if bias is not None and (bias.dtype != np.float64 or not bias.flags.c_contiguous):
            return None
        layout[index] = (code, 1 if layer.use_bias else 0, kernel.shape[0], kernel.shape[1])
        dense_layers.append(layer)
    for below, above in itertools.pairwise(layout):
        if below[3] != above[2]:
            return None
    if _coeff_values(list(dense_layers)) is None:
        return None
    plan = _assemble(model, dense_layers, optimizer, loss, loss_code, opt_code, layout)
    if plan is not None:
        _refresh_numbers(plan)
    return plan


def _same_layout(array: Any, like: Array) -> bool:
    """A C-contiguous float64 array of like's shape: its flat view writes through."""
    return (
        isinstance(array, np.ndarray)
        and array.dtype == np.float64
        and array.shape == like.shape
        and array.flags.c_contiguous
    )


def _assemble(
    model: Any,
    dense_layers: list[Dense],
    optimizer: optimizers.Optimizer,
    loss: losses.Loss,
    loss_code: int,
    opt_code: int,
    layout: npt.NDArray[np.int64],
) -> _Plan | None:
    """Collect the arrays (creating optimizer state and last_update entries) into a plan."""
    # Imported here: numba's typed containers take ~0.2 s to load.
    from numba.typed import List

    slot_names = _SLOT_NAMES[opt_code]
    params: list[Array] = []
    slots: list[list[Array]] = [[], []]
    checks: list[tuple[dict[str, Any], str, Any]] = []
    update_keys: list[tuple[str, Array]] = []
    scratch: list[Array] = []  # the last step's deltas, in the kernel's block 3
    norm_keys: list[str] = []
    for index, layer in enumerate(dense_layers):
        layer_index = model.layers.index(layer)
        norm_keys.append(f"layers.{layer_index}")
        for name in ("kernel", "bias"):
            array = layer.params.get(name)
            if array is None:
                # No bias: the kernel reads and updates scratch zeros it never adds.
                width = int(layout[index, 3])
                params.append(np.zeros(width))
                slots[0].append(np.zeros(width))
                slots[1].append(np.zeros(width))
                scratch.append(np.zeros(width))
                continue
            key = f"layers.{layer_index}.{name}"
            state = optimizer.state.get(key)
            if state is None:
                state = optimizer.state[key] = optimizer.build_state(array)
            for slot, slot_name in enumerate(slot_names):
                if slot_name and slot_name not in state:
                    # A hyper-parameter changed after the state was built (e.g. momentum
                    # turned on): add the slot the optimizer would build now.
                    fresh = optimizer.build_state(array)
                    if slot_name in fresh:
                        state[slot_name] = fresh[slot_name]
                slot_array = state.get(slot_name) if slot_name else None
                if slot_name:
                    # Also "still absent": a slot added later must replace the scratch.
                    checks.append((state, slot_name, slot_array))
                if slot_array is None:
                    slot_array = np.zeros_like(array)
                elif not _same_layout(slot_array, array):
                    return None  # the kernel would update a copy, not the optimizer's state
                slots[slot].append(slot_array.reshape(-1))
            last = optimizer.last_update.get(key)
            if last is None or not _same_layout(last, array):
                last = np.zeros_like(array)
            update_keys.append((key, last))
            scratch.append(last.reshape(-1))
            checks.append((layer.params, name, array))
            checks.append((optimizer.state, key, state))
            params.append(array.reshape(-1))
    flat = List(params + slots[0] + slots[1] + scratch)
    parts = [(layer, _layer_parts(layer)) for layer in dense_layers]
    return _Plan(
        layers=list(model.layers),
        optimizer=optimizer,
        loss=loss,
        loss_code=loss_code,
        opt_code=opt_code,
        layout=layout,
        coeffs=np.zeros((layout.shape[0], kernels.N_COEFFS)),
        hyper=np.zeros(kernels.N_HYPER),
        arrays=flat,
        checks=checks,
        parts=parts,
        norm_keys=norm_keys,
        update_keys=update_keys,
    )


def _plan_valid(plan: _Plan, model: Any) -> bool:
    """Whether the model still has the layers, objects and arrays the plan was built on."""
    if (
        plan.layers != model.layers
        or plan.optimizer is not model.optimizer
        or plan.loss is not model.loss
    ):
        return False
    for layer, parts in plan.parts:
        if _layer_parts(layer) != parts:
            return False
    return all(store.get(key) is value for store, key, value in plan.checks)


def _current_plan(model: Any) -> _Plan | None:
    """The cached plan if still valid, else a fresh one (None when unsupported)."""
    plan = _plans.get(model)
    if plan is not None and _plan_valid(plan, model) and _refresh_numbers(plan):
        return plan
    plan = _build_plan(model)
    if plan is None:
        _plans.pop(model, None)
        return None
    _plans[model] = plan
    return plan


# The plan supports() just validated: train_epoch, called right after, skips re-checking it.
_just_checked: _Plan | None = None


def supports(model: Any) -> bool:
    """Whether `train_epoch` can run this model; False sends it down the numpy path."""
    global _just_checked
    try:
        plan = _current_plan(model)
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
    if plan is None or plan is not _plans.get(model):
        plan = _current_plan(model)
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


# ---- forward over many points (decision grid, neuron heatmaps) ---------------------------------


@dataclass
class _GridBuffers:
    """Preallocated outputs for one model and one number of points, unit-major (units, n)."""

    outputs: list[Array]
    scratch: Array
    negative: npt.NDArray[np.bool_]


_grid_buffers: weakref.WeakKeyDictionary[Any, dict[int, _GridBuffers]] = (
    weakref.WeakKeyDictionary()
)
_MAX_GRID_SIZES = 4  # distinct point counts cached per model (output grid, neuron grid, ...)


def _sigmoid_inplace(values: Array, buffers: _GridBuffers) -> None:
    """values <- 1 / (1 + e^-z) in place: e = e^-|z|, then 1/(1+e) or e/(1+e) by sign.

    Equal to activations.Sigmoid to a few ulp (relative) without its slow logaddexp.
    """
    scratch = buffers.scratch[: values.size].reshape(values.shape)
    negative = buffers.negative[: values.size].reshape(values.shape)
    np.less(values, 0.0, out=negative)
    np.abs(values, out=scratch)
    np.negative(scratch, out=scratch)
    np.exp(scratch, out=scratch)
    np.add(scratch, 1.0, out=values)
    np.reciprocal(values, out=values)
    np.multiply(scratch, values, out=scratch)
    np.copyto(values, scratch, where=negative)


def _activate_inplace(layer: Dense, values: Array, buffers: _GridBuffers) -> bool:
    """Apply the layer's activation to `values` in place; False when it has no in-place form."""
    kind = type(layer.activation)
    if kind is activations.Tanh:
        np.tanh(values, out=values)
    elif kind is activations.Sigmoid:
        _sigmoid_inplace(values, buffers)
    elif kind is activations.ReLU:
        np.maximum(values, 0.0, out=values)
    elif kind is not activations.Linear:
        return False
    return True


def _buffers_for(model: Any, n: int) -> _GridBuffers:
    """This model's buffers for n points, allocated on first use."""
    per_model = _grid_buffers.setdefault(model, {})
    buffers = per_model.get(n)
    widths = [layer.n_out for layer in model.layers]
    if buffers is None or [out.shape[0] for out in buffers.outputs] != widths:
        if len(per_model) >= _MAX_GRID_SIZES:
            per_model.clear()
        widest = max(widths)
        buffers = per_model[n] = _GridBuffers(
            outputs=[np.empty((width, n)) for width in widths],
            scratch=np.empty(n * widest),
            negative=np.empty(n * widest, dtype=np.bool_),
        )
    return buffers


def forward_all(model: Any, points: npt.ArrayLike) -> list[Array]:
    """Every layer's output at every point, in inference mode: [(n, units_l) for each layer].

    points: (n, input_dim) features. For the decision grid (the last entry) and the neuron
    heatmaps (the hidden entries); equal to `model.predict` up to rounding (matmul order;
    sigmoid without logaddexp, ~10x faster). Dense layers with tanh, sigmoid, relu or linear
    are computed unit-major, (units, n), so the bias add and the activation run over
    contiguous rows; the arrays returned are transposed views of buffers kept per model and
    per n, overwritten by the next call with the same model and n (copy what you keep).
    Other layers run their own numpy `forward(x, training=False)`.
    """
    x = np.ascontiguousarray(points, dtype=np.float64)
    input_dim = getattr(model, "input_dim", None)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != input_dim:
        raise ValueError(
            f"points must have shape (n, {input_dim}) with n >= 1, got {x.shape}"
        )
    buffers = _buffers_for(model, x.shape[0])
    outputs: list[Array] = []
    values = x
    for layer, out in zip(model.layers, buffers.outputs, strict=True):
        if type(layer) is Dense and layer.activation is not None:
            # z^T = W^T a^T: (units, n_in) @ (n_in, n); a bias per contiguous row.
            np.matmul(layer.params["kernel"].T, values.T, out=out)
            if layer.use_bias:
                out += layer.params["bias"][:, np.newaxis]
            if not _activate_inplace(layer, out, buffers):
                out[...] = layer.activation.fn(out.T).T
            values = out.T
        else:
            values = layer.forward(values, training=False)
        outputs.append(values)
    return outputs


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
    return time.perf_counter() - start


def start_warm_up() -> threading.Thread:
    """Warm the kernel in a daemon thread: compile it in a child process, then load it here.

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
        warm_up()

    thread = threading.Thread(target=run, name="fast-path-warm-up", daemon=True)
    thread.start()
    return thread
