"""Backprop trace: forward values, deltas, gradients and the optimizer's next step, for one batch.

Everything is computed on deep copies, so tracing a live model changes nothing it will do next
(weights, optimizer state, random streams, BN statistics). Beside every analytic gradient sits
a central-difference numeric one, (J(w + h) - J(w - h)) / 2h of the same objective (data loss
plus penalties, in the same training/inference mode, with the same dropout masks).
"""

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import Dense, Input, optimizers
from app.engine.model import Sequential

Array = npt.NDArray[np.float64]
Nested = Any  # nested lists of floats, as JSON carries arrays

NUMERIC_STEP = 1e-5
# Central differences of a smooth float64 objective agree with backprop to ~1e-7 relative;
# 1e-4 (absolute below 1, relative above) leaves room for rounding without hiding a wrong
# gradient. A kink (ReLU exactly at 0) inside the step can still fail it, honestly.
GRADIENT_CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LayerValues:
    """One layer on this batch: pre-activation z, output a, and delta = dJ/dz, each (n, units)."""

    index: int
    name: str
    kind: str
    z: Nested
    a: Nested
    delta: Nested
    grad_norm: float | None  # L2 norm of this layer's parameter gradients, None if it has none


@dataclass(frozen=True)
class ParameterValues:
    """One parameter array: value, gradients, optimizer state and the step it would take."""

    name: str  # "layers.{i}.{param}", as Sequential.parameters()
    value: Nested
    gradient: Nested
    numeric_gradient: Nested | None
    max_abs_difference: float | None  # max |analytic - numeric|
    state_before: dict[str, Nested]  # the optimizer's slots now (empty before its first step)
    state_after: dict[str, Nested]  # slots after the step, with derived values (m_hat, v_hat)
    update: Nested  # what the step adds to the value
    new_value: Nested  # value + update, then constraints (max-norm)


@dataclass(frozen=True)
class GradientCheck:
    """How far the analytic gradients are from the numeric ones, over every parameter."""

    step: float
    max_abs_difference: float
    max_relative_difference: float
    passed: bool


@dataclass(frozen=True)
class BackpropTrace:
    """The whole picture of one training step on one batch, without taking it."""

    x: Nested
    y: Nested
    output: Nested
    loss: float
    penalty: float
    objective: float  # loss + penalty: what the gradients are of
    training: bool
    layers: list[LayerValues]
    parameters: list[ParameterValues]
    optimizer: dict[str, float | bool | str | int]
    gradient_check: GradientCheck | None


def _objective(model: Sequential, x: Array, y: Array, training: bool) -> float:
    """Data loss plus penalties; Sequential.trace restores the noise, so masks repeat exactly."""
    result = model.trace(x, y, training=training)
    return result.loss + result.penalty


def numeric_gradients(
    model: Sequential, x: Array, y: Array, training: bool = False, step: float = NUMERIC_STEP
) -> dict[str, Array]:
    """Central differences of the objective for every parameter entry, on a copy of the model."""
    probe = copy.deepcopy(model)
    gradients: dict[str, Array] = {}
    for key, param in probe.parameters().items():
        grad = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + step
            plus = _objective(probe, x, y, training)
            param[index] = saved - step
            minus = _objective(probe, x, y, training)
            param[index] = saved
            grad[index] = (plus - minus) / (2.0 * step)
        gradients[key] = grad
    return gradients


def _state_lists(state: dict[str, Array]) -> dict[str, Nested]:
    return {slot: np.asarray(value).tolist() for slot, value in state.items()}


def trace_model(
    model: Sequential,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    training: bool = True,
    numeric: bool = True,
    step: float = NUMERIC_STEP,
) -> BackpropTrace:
    """Trace one step of `model` on batch (x, y); `model` itself is left exactly as it was.

    training=True traces what a training step does (dropout masks, batch statistics).
    """
    # A diverging net overflows on the way; its trace shows the inf/NaN rather than warning.
    with np.errstate(all="ignore"):
        return _trace(model, x, y, training, numeric, step)


def _trace(
    model: Sequential,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    training: bool,
    numeric: bool,
    step: float,
) -> BackpropTrace:
    work = copy.deepcopy(model)
    if work.optimizer is None:
        raise ValueError("the model needs compile(optimizer=..., loss=...) before a trace")
    result = work.trace(x, y, training=training)
    x_array, y_array = result.x, result.y
    numeric_grads = numeric_gradients(work, x_array, y_array, training, step) if numeric else None

    # The step the optimizer would take, on a second copy: its state, its update, new weights.
    stepped = copy.deepcopy(work)
    optimizer = stepped.optimizer
    assert optimizer is not None
    before = {key: _state_lists(slots) for key, slots in optimizer.state.items()}
    params = stepped.parameters()
    optimizer.apply_gradients(params, result.gradients)
    for layer in stepped.layers:
        layer.apply_constraints()
    after = optimizer.trace()

    parameters: list[ParameterValues] = []
    worst_abs = worst_rel = 0.0
    all_close = True
    for key, value in work.parameters().items():
        analytic = result.gradients[key]
        numeric_grad = None if numeric_grads is None else numeric_grads[key]
        difference = None
        if numeric_grad is not None:
            gap = np.abs(analytic - numeric_grad)
            difference = float(gap.max(initial=0.0))
            scale = np.maximum(np.abs(analytic) + np.abs(numeric_grad), 1e-8)
            worst_abs = max(worst_abs, difference)
            worst_rel = max(worst_rel, float((gap / scale).max(initial=0.0)))
            # Each entry: absolute for small gradients, relative for large ones.
            allowed = GRADIENT_CHECK_TOLERANCE * np.maximum(1.0, np.abs(analytic))
            all_close = all_close and bool(np.all(gap <= allowed))
        state_after = {k: v for k, v in after[key].items() if k != "update"}
        parameters.append(ParameterValues(
            name=key,
            value=value.tolist(),
            gradient=analytic.tolist(),
            numeric_gradient=None if numeric_grad is None else numeric_grad.tolist(),
            max_abs_difference=difference,
            state_before=before.get(key, {}),
            state_after=_state_lists(state_after),
            update=after[key]["update"].tolist(),
            new_value=params[key].tolist(),
        ))

    layers = [
        LayerValues(
            index=lt.index,
            name=lt.name,
            kind=lt.kind,
            z=lt.z.tolist(),
            a=lt.a.tolist(),
            delta=lt.delta.tolist(),
            grad_norm=_layer_grad_norm(result.gradients, lt.index),
        )
        for lt in result.layers
    ]
    check = None
    if numeric_grads is not None:
        check = GradientCheck(
            step=step,
            max_abs_difference=worst_abs,
            max_relative_difference=worst_rel,
            passed=all_close,
        )
    config: dict[str, float | bool | str | int] = {
        **optimizer.get_config(),
        "iterations": int(model.optimizer.iterations) if model.optimizer else 0,
    }
    return BackpropTrace(
        x=x_array.tolist(),
        y=y_array.tolist(),
        output=result.output.tolist(),
        loss=float(result.loss),
        penalty=float(result.penalty),
        objective=float(result.loss + result.penalty),
        training=training,
        layers=layers,
        parameters=parameters,
        optimizer=config,
        gradient_check=check,
    )


def _layer_grad_norm(gradients: dict[str, Array], index: int) -> float | None:
    """L2 norm over every parameter gradient of layer `index` (the frames' grad_norm)."""
    prefix = f"layers.{index}."
    squares = [float(np.sum(g**2)) for key, g in gradients.items() if key.startswith(prefix)]
    return math.sqrt(sum(squares)) if squares else None


# ---- the lecture's 2-2-2 example -----------------------------------------------------------

LECTURE_INPUTS = [0.05, 0.1]
LECTURE_TARGETS = [0.01, 0.99]
LECTURE_LEARNING_RATE = 0.5
LECTURE_WEIGHTS = {
    "w1": 0.15, "w2": 0.2, "w3": 0.25, "w4": 0.3,
    "w5": 0.4, "w6": 0.45, "w7": 0.5, "w8": 0.55,
    "b1": 0.35, "b2": 0.6,
}
# Where each of the slide's weights lives: w1 joins x1 to h1 (kernel row = input, column = unit).
LECTURE_SLOTS: dict[str, tuple[str, tuple[int, ...]]] = {
    "w1": ("layers.0.kernel", (0, 0)),
    "w2": ("layers.0.kernel", (1, 0)),
    "w3": ("layers.0.kernel", (0, 1)),
    "w4": ("layers.0.kernel", (1, 1)),
    "w5": ("layers.1.kernel", (0, 0)),
    "w6": ("layers.1.kernel", (1, 0)),
    "w7": ("layers.1.kernel", (0, 1)),
    "w8": ("layers.1.kernel", (1, 1)),
}
HIDDEN, OUTPUT = ("h1", "h2"), ("o1", "o2")


@dataclass(frozen=True)
class Quantity:
    """One number of the slide: its symbol, its value and how it is obtained."""

    symbol: str
    value: float
    formula: str


@dataclass(frozen=True)
class Phase:
    """One stage of the worked example, revealed one after the other."""

    id: str
    title: str
    quantities: list[Quantity]


@dataclass(frozen=True)
class LectureExample:
    """The lecture's 2-2-2 sigmoid network with squared error, one SGD step, phase by phase."""

    inputs: list[float]
    targets: list[float]
    learning_rate: float
    weights: dict[str, float]
    phases: list[Phase]
    trace: BackpropTrace


def lecture_model(learning_rate: float = LECTURE_LEARNING_RATE) -> Sequential:
    """2 inputs, 2 sigmoid hidden, 2 sigmoid outputs, MSE, SGD, with the slide's weights.

    Keras's mse averages over the 2 outputs: mean((t - o)^2) = sum(1/2 (t - o)^2), exactly
    the slide's E_total for one instance, so its gradients are the slide's too.
    """
    model = Sequential([Input(shape=(2,)), Dense(2, "sigmoid"), Dense(2, "sigmoid")], seed=0)
    model.compile(optimizer=optimizers.get("sgd", learning_rate=learning_rate), loss="mse")
    w = LECTURE_WEIGHTS
    model.set_weights([
        [[w["w1"], w["w3"]], [w["w2"], w["w4"]]], [w["b1"], w["b1"]],
        [[w["w5"], w["w7"]], [w["w6"], w["w8"]]], [w["b2"], w["b2"]],
    ])
    return model


def lecture_example(learning_rate: float = LECTURE_LEARNING_RATE) -> LectureExample:
    """The worked example of the backprop slides, every number taken from the engine's trace."""
    model = lecture_model(learning_rate)
    x = np.array([LECTURE_INPUTS])
    y = np.array([LECTURE_TARGETS])
    trace = trace_model(model, x, y, training=True)
    hidden, output = trace.layers[0], trace.layers[1]
    by_name = {p.name: p for p in trace.parameters}

    def at(name: str, field: str) -> float:
        key, index = LECTURE_SLOTS[name]
        return float(np.asarray(getattr(by_name[key], field))[index])

    first = model.layers[0]
    assert isinstance(first, Dense) and first.activation is not None and model.loss is not None
    sigmoid = first.activation
    out_o = np.asarray(output.a)
    d_out = model.loss.grad(y, out_o)[0]  # dE_total/dout_o
    dout_dnet_o = sigmoid.grad(np.asarray(output.z), out_o)[0]
    dout_dnet_h = sigmoid.grad(np.asarray(hidden.z), np.asarray(hidden.a))[0]
    delta_o, delta_h = np.asarray(output.delta)[0], np.asarray(hidden.delta)[0]
    w_out = np.asarray(by_name["layers.1.kernel"].value)  # (hidden, output)

    forward = [
        q
        for j, h in enumerate(HIDDEN)
        for q in (
            Quantity(f"net_{h}", hidden.z[0][j], f"w{2 * j + 1}*x1 + w{2 * j + 2}*x2 + b1"),
            Quantity(f"out_{h}", hidden.a[0][j], f"1 / (1 + e^-net_{h})"),
        )
    ] + [
        q
        for k, o in enumerate(OUTPUT)
        for q in (
            Quantity(f"net_{o}", output.z[0][k], f"w{5 + 2 * k}*out_h1 + w{6 + 2 * k}*out_h2 + b2"),
            Quantity(f"out_{o}", output.a[0][k], f"1 / (1 + e^-net_{o})"),
        )
    ]
    errors = [
        Quantity(
            f"E_{o}", 0.5 * (LECTURE_TARGETS[k] - out_o[0, k]) ** 2,
            f"1/2 (target_{o} - out_{o})^2",
        )
        for k, o in enumerate(OUTPUT)
    ] + [Quantity("E_total", trace.loss, "E_o1 + E_o2")]
    output_deltas = [
        q
        for k, o in enumerate(OUTPUT)
        for q in (
            Quantity(f"dE/dout_{o}", float(d_out[k]), f"-(target_{o} - out_{o})"),
            Quantity(f"dout_{o}/dnet_{o}", float(dout_dnet_o[k]), f"out_{o}(1 - out_{o})"),
            Quantity(f"delta_{o}", float(delta_o[k]), f"dE/dout_{o} * dout_{o}/dnet_{o}"),
        )
    ]
    hidden_deltas = []
    for j, h in enumerate(HIDDEN):
        for k, o in enumerate(OUTPUT):
            weight = f"w{5 + j + 2 * k}"
            hidden_deltas.append(Quantity(
                f"dE_{o}/dout_{h}", float(delta_o[k] * w_out[j, k]), f"delta_{o} * {weight}"
            ))
        hidden_deltas += [
            Quantity(f"dE/dout_{h}", float(delta_o @ w_out[j]), f"dE_o1/dout_{h} + dE_o2/dout_{h}"),
            Quantity(f"dout_{h}/dnet_{h}", float(dout_dnet_h[j]), f"out_{h}(1 - out_{h})"),
            Quantity(f"delta_{h}", float(delta_h[j]), f"dE/dout_{h} * dout_{h}/dnet_{h}"),
        ]
    names = list(LECTURE_SLOTS)
    gradients = [Quantity(f"dE/d{n}", at(n, "gradient"), _grad_formula(n)) for n in names]
    new_weights = [
        Quantity(f"{n}'", at(n, "new_value"), f"{n} - eta * dE/d{n}") for n in names
    ]
    phases = [
        Phase("forward", "Forward pass: each unit's net input and output", forward),
        Phase("error", "The error of each output and the total", errors),
        Phase("output_deltas", "Backward pass, output layer: the deltas", output_deltas),
        Phase("hidden_deltas", "Backward pass, hidden layer: the deltas", hidden_deltas),
        Phase("gradients", "Each weight's gradient", gradients),
        Phase("new_weights", f"One gradient-descent step, eta = {learning_rate}", new_weights),
    ]
    return LectureExample(
        inputs=list(LECTURE_INPUTS),
        targets=list(LECTURE_TARGETS),
        learning_rate=learning_rate,
        weights=dict(LECTURE_WEIGHTS),
        phases=phases,
        trace=trace,
    )


def _grad_formula(name: str) -> str:
    """The chain rule for one of the slide's weights, in its notation."""
    number = int(name[1:])
    if number >= 5:
        unit, source = OUTPUT[(number - 5) // 2], HIDDEN[(number - 5) % 2]
        return f"delta_{unit} * out_{source}"
    unit, source = HIDDEN[(number - 1) // 2], ("x1", "x2")[(number - 1) % 2]
    return f"delta_{unit} * {source}"
