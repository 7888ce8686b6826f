"""Builds a session's FramePart: latest weights, metrics, confusion, and quantized grids."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from app.datasets import featurize
from app.engine import fast
from app.engine import fast_grid_kernel as grid_kernel
from app.engine.layers import Dense
from app.sessions.build import grid_points
from app.sessions.frames import FramePart, Section, quantize, quantize_columns
from app.sessions.session import TrainingSession
from app.settings import get_settings

Array = npt.NDArray[np.float64]
PROTOCOL_VERSION = 1


def build_part(
    session: TrainingSession, first_epoch: int, lockstep: tuple[int, Array] | None = None
) -> FramePart:
    """The session's state now plus its history rows from `first_epoch` on."""
    config = session.config
    extent = get_settings().grid_extent
    problem = config.resolved_problem()
    with np.errstate(all="ignore"):
        sections = _grids(session, extent)
        header: dict[str, Any] = {
            "type": "frame",
            "protocol": PROTOCOL_VERSION,
            "session_id": session.id,
            "epoch": session.epoch,
            "status": session.status,
            "status_reason": session.status_reason,
            "warning": session.warning,
            "weights_hash": session.weights_hash(),
            "problem": problem,
            "n_classes": config.n_classes(),
            "metric": "mae" if problem == "regression" else "accuracy",
            "metrics": session.metrics(),
            "confusion": _confusion(session) if problem != "regression" else None,
            "layers": _layers(session),
            "inputs": list(config.features),
            "grid": {"extent": [-extent, extent, -extent, extent],
                     "resolution": config.grid_resolution},
            "lockstep": config.lockstep,
        }
    if lockstep is not None:
        header["param_layout"] = param_layout(session)
        header["lockstep_first"] = lockstep[0]
    return FramePart(
        header=header,
        sections=sections,
        history_id=session.history_id,
        first_epoch=max(first_epoch, 1),
        rows=session.history.rows(first_epoch),
        lockstep=None if lockstep is None else lockstep[1],
        lockstep_first=None if lockstep is None else lockstep[0],
    )


def param_layout(session: TrainingSession) -> list[dict[str, Any]]:
    """Name and shape of every array of get_weights(), in order (the lockstep vector layout)."""
    return [
        {"name": f"{layer.name}.{key}", "shape": list(store[key].shape)}
        for layer in session.model.layers
        for store, key in layer.weight_slots()
    ]


def flat_weights(session: TrainingSession) -> Array:
    """get_weights() concatenated into one float64 vector."""
    return np.concatenate([w.ravel() for w in session.model.get_weights()])


# The grids' features, shared by every session with the same grids and features (in float32,
# as the forward takes them): one copy stays in the CPU's cache while a worker draws 100.
_GRID_FEATURES: dict[tuple[int, int, float, tuple[str, ...]], npt.NDArray[np.float32]] = {}
_MAX_GRID_FEATURES = 16


def _grid_features(
    session: TrainingSession, resolution: int, extent: float
) -> npt.NDArray[np.float32]:
    """The output grid's r*r points, then the neuron grid's g*g points, as features (cached)."""
    config = session.config
    key = (resolution, config.neuron_grid_resolution, extent, tuple(config.features))
    features = _GRID_FEATURES.get(key)
    if features is None:
        if len(_GRID_FEATURES) >= _MAX_GRID_FEATURES:
            _GRID_FEATURES.clear()
        points = np.concatenate([grid_points(resolution, extent),
                                 grid_points(config.neuron_grid_resolution, extent)])
        # Unit-major memory ((n_features, n) C-contiguous, seen as its (n, n_features)
        # transpose): the compiled float32 forward reads it as is, without a copy.
        unit_major = np.ascontiguousarray(featurize(points, config.features).T, np.float32)
        unit_major.flags.writeable = False
        features = _GRID_FEATURES[key] = unit_major.T
    return features


def _layer_outputs(session: TrainingSession, x: npt.NDArray[Any]) -> list[Array]:
    """Every layer's inference output: the engine's buffered fast forward when it applies.

    In float32: the grids become 256-level pictures, and numpy's float32 tanh and exp make the
    forward ~3x cheaper (it was over half of a frame's cost in the worker). In buffers shared
    by every model of the same widths: _grids() copies what it keeps before the next call.
    """
    try:
        return fast.forward_all(session.model, x, np.float32, shared=True)
    except (AttributeError, ValueError):  # an engine without forward_all, or a shape it refuses
        outputs = []
        for layer in session.model.layers:
            x = layer.forward(x, training=False)
            outputs.append(x)
        return outputs


def _grids(session: TrainingSession, extent: float) -> dict[str, Section]:
    config = session.config
    r, g = config.grid_resolution, config.neuron_grid_resolution
    # One forward for both pictures: the output grid's points, then the neuron grid's.
    outputs = _layer_outputs(session, _grid_features(session, r, extent))
    output = outputs[-1][: r * r]
    sections: dict[str, Section] = {}
    if config.resolved_problem() == "multiclass":
        sections["output_class"] = Section(np.argmax(output, axis=1).astype(np.uint8).reshape(r, r))
        values = output.max(axis=1)
    else:
        values = output[:, 0]
    codes, low, high = _quantize_picture(values, r)
    sections["output"] = Section(codes, {"min": low, "max": high})
    hidden = [outputs[i][r * r:] for i in session.built.neuron_indices]
    if hidden:
        planes, lows, highs = _quantize_neurons(hidden)
        ranges = [[_short(low), _short(high)] for low, high in zip(lows, highs, strict=True)]
        sections["neurons"] = Section(planes.reshape(-1, g, g), {"ranges": ranges})
    del outputs, output, values, hidden  # views of the engine's reused buffers
    return sections


def _quantize_picture(
    values: npt.NDArray[Any], r: int
) -> tuple[npt.NDArray[np.uint8], float, float]:
    """quantize(values as r x r): a float32 row in one compiled pass (fast_grid_kernel's
    quantize_single, numpy's float32 arithmetic), anything else (or a NaN/inf) by quantize()."""
    if values.dtype == np.float32 and values.flags.c_contiguous:
        codes = np.empty(values.shape, np.uint8)
        low, high, done = grid_kernel.quantize_single(values, codes)
        if done:
            return codes.reshape(r, r), low, high
    return quantize(values.reshape(r, r))


def _quantize_neurons(
    hidden: list[npt.NDArray[Any]],
) -> tuple[npt.NDArray[np.uint8], list[float], list[float]]:
    """quantize_columns of the hidden layers' (g*g, units) outputs side by side: float32
    buffers in one compiled pass per layer (fast_grid_kernel's quantize_units, numpy's float64
    arithmetic), anything else (or a NaN/inf) by quantize_columns on their concatenation."""
    if all(h.dtype == np.float32 for h in hidden):
        parts, lows, highs = [], [], []
        for h in hidden:
            units = h.T  # (units, g*g): each unit's picture is a contiguous run of its row
            codes = np.empty(units.shape, np.uint8)
            low, high = np.empty(len(units)), np.empty(len(units))
            if not grid_kernel.quantize_units(units, codes, low, high):
                break
            parts.append(codes)
            lows += low.tolist()
            highs += high.tolist()
        else:
            return np.concatenate(parts), lows, highs
    # (g*g, m), a copy of the reused buffers
    return quantize_columns(np.concatenate(hidden, axis=1))


def _confusion(session: TrainingSession) -> dict[str, list[list[int]]]:
    k = session.config.n_classes()
    data = session.data
    n = len(data.x_train)
    # The last epoch's predictions of every point, unless weights changed since (edit, reset).
    everything = session.last_prediction
    if everything is None or len(everything) != n + len(data.x_test):
        everything = session.model.predict(np.concatenate([data.x_train, data.x_test]))
    result = {}
    for name, prediction, y in (
        ("train", everything[:n], data.y_train),
        ("test", everything[n:], data.y_test),
    ):
        if k == 2 and prediction.shape[1] == 1:
            predicted = (prediction[:, 0] > 0.5).astype(np.intp)
            truth = (y.reshape(-1) > 0.5).astype(np.intp)
        else:
            predicted = np.argmax(prediction, axis=1)
            truth = y.reshape(-1).astype(np.intp)
        counts = np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)
        result[name] = counts.tolist()
    return result


def _layers(session: TrainingSession) -> list[dict[str, Any]]:
    model = session.model
    entries = []
    for position, index in enumerate(session.built.dense_indices):
        dense = model.layers[index]
        assert isinstance(dense, Dense)
        block = session.built.block_of_dense[position]
        norm = model.grad_norms.get(f"layers.{index}")
        bn_index = block["batch_norm"]
        batch_norm = None
        if bn_index is not None:
            bn = model.layers[bn_index]
            batch_norm = {
                "gamma": _finite(bn.params["gamma"]),
                "beta": _finite(bn.params["beta"]),
                "moving_mean": _finite(bn.state["moving_mean"]),
                "moving_variance": _finite(bn.state["moving_variance"]),
            }
        activation = dense.activation_name
        if bn_index is not None:
            activation = session.config.layers[position].activation
        entries.append({
            "index": position,
            "units": dense.units,
            "activation": activation,
            "kernel": _finite(dense.params["kernel"]),
            "bias": _finite(dense.params["bias"]),
            "grad_norm": norm if norm is not None and math.isfinite(norm) else None,
            "dropout": block["dropout"],
            "batch_norm": batch_norm,
        })
    return entries


def _finite(array: Array) -> Any:
    """Header numbers to 6 significant digits (display); exact values are in lockstep/export.

    Non-finite values become null. Python floats, not numpy scalars: formatting every weight
    of every frame was a fifth of a frame's header cost.
    """
    flat = [float(f"{v:.6g}") if math.isfinite(v) else None for v in array.ravel().tolist()]
    if array.ndim <= 1:
        return flat if array.ndim == 1 else flat[0]
    shape = array.shape
    for size in reversed(shape[1:]):  # nest from the innermost axis out
        flat = [flat[i:i + size] for i in range(0, len(flat), size)]  # type: ignore[misc]
    return flat


def _short(value: float) -> float:
    """A float to 6 significant digits, so the JSON header stays small."""
    return float(f"{value:.6g}")
