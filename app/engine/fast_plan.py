"""Checking a model for the compiled fast path and packing it into the kernel's arguments.

`current_plan(model)` maps a model onto `fast_kernels.train_epoch_kernel`'s arguments (the layer
table, the coefficient and hyper-parameter arrays, flat views of the model's own arrays), or
returns None when the model has anything the kernel does not support. Plans are cached per
model and rebuilt only when a layer, the optimizer, the loss or one of the arrays they were
built on has been replaced; changed rates are copied in before every epoch.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations, constraints, losses, optimizers, regularizers
from app.engine import fast_kernels as kernels
from app.engine.layers import Dense, Layer

Array = npt.NDArray[np.float64]

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
class Plan:
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


_plans: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()


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


def _refresh_numbers(plan: Plan) -> bool:
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


def _build_plan(model: Any) -> Plan | None:
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
) -> Plan | None:
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
    return Plan(
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


def _plan_valid(plan: Plan, model: Any) -> bool:
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


def current_plan(model: Any) -> Plan | None:
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


def cached_plan(model: Any) -> Plan | None:
    """The plan last built for this model, without re-checking it."""
    return _plans.get(model)
