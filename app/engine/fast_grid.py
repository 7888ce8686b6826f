"""The inference forward over many points (the decision grid, the neuron heatmaps).

numpy with preallocated unit-major buffers, because over 10,000 points numpy's SIMD tanh
(~1.6 ns) beats any compiled loop tried here (libm tanh ~20 ns, a vectorized Cephes tanh ~4 ns).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations
from app.engine.layers import Dense

Array = npt.NDArray[np.float64]


@dataclass
class _GridBuffers:
    """Preallocated outputs for one model and one number of points, unit-major (units, n)."""

    outputs: list[Array]
    scratch: Array
    negative: npt.NDArray[np.bool_]


_grid_buffers: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], _GridBuffers]] = (
    weakref.WeakKeyDictionary()
)
_MAX_GRID_SIZES = 4  # distinct point counts cached per model (output grid, neuron grid, ...)
# Buffers shared by every model of the same layer widths (forward_all(shared=True)): a worker
# drawing 100 sessions' grids in turn then reuses one set that stays in the CPU's cache.
_shared_buffers: dict[tuple[tuple[int, ...], int, str], _GridBuffers] = {}
_MAX_SHARED = 16


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


def _new_buffers(widths: list[int], n: int, dtype: npt.DTypeLike) -> _GridBuffers:
    widest = max(widths)
    return _GridBuffers(
        outputs=[np.empty((width, n), dtype) for width in widths],
        scratch=np.empty(n * widest, dtype),
        negative=np.empty(n * widest, dtype=np.bool_),
    )


def _buffers_for(
    model: Any, n: int, dtype: npt.DTypeLike = np.float64, shared: bool = False
) -> _GridBuffers:
    """This model's buffers for n points of `dtype` (or the shared ones for its layer widths),
    allocated on first use."""
    widths = [layer.n_out for layer in model.layers]
    if shared:
        shared_key = (tuple(widths), n, np.dtype(dtype).str)
        found = _shared_buffers.get(shared_key)
        if found is None:
            if len(_shared_buffers) >= _MAX_SHARED:
                _shared_buffers.clear()
            found = _shared_buffers[shared_key] = _new_buffers(widths, n, dtype)
        return found
    per_model = _grid_buffers.setdefault(model, {})
    key = (n, np.dtype(dtype).str)
    buffers = per_model.get(key)
    if buffers is None or [out.shape[0] for out in buffers.outputs] != widths:
        if len(per_model) >= _MAX_GRID_SIZES:
            per_model.clear()
        buffers = per_model[key] = _new_buffers(widths, n, dtype)
    return buffers


def forward_all(
    model: Any, points: npt.ArrayLike, dtype: npt.DTypeLike = np.float64, shared: bool = False
) -> list[Array]:
    """Every layer's output at every point, in inference mode: [(n, units_l) for each layer].

    points: (n, input_dim) features. For the decision grid (the last entry) and the neuron
    heatmaps (the hidden entries); equal to `model.predict` up to rounding (matmul order;
    sigmoid without logaddexp, ~10x faster). Dense layers with tanh, sigmoid, relu or linear
    are computed unit-major, (units, n), so the bias add and the activation run over
    contiguous rows; the arrays returned are transposed views of buffers kept per model and
    per n, overwritten by the next call with the same model and n (copy what you keep).
    Other layers run their own numpy `forward(x, training=False)`. `dtype=np.float32` computes
    the Dense layers in single precision (~3x faster: numpy's float32 tanh and exp), for
    pictures quantized to 256 levels anyway; the weights are rounded to float32 for it.
    `shared=True` uses buffers shared by all models of the same layer widths: the next call
    with ANY such model overwrites the arrays returned.
    """
    x = np.ascontiguousarray(points, dtype=dtype)
    input_dim = getattr(model, "input_dim", None)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] != input_dim:
        raise ValueError(
            f"points must have shape (n, {input_dim}) with n >= 1, got {x.shape}"
        )
    buffers = _buffers_for(model, x.shape[0], x.dtype, shared)
    outputs: list[Array] = []
    values = x
    for layer, out in zip(model.layers, buffers.outputs, strict=True):
        if type(layer) is Dense and layer.activation is not None:
            # z^T = W^T a^T: (units, n_in) @ (n_in, n); a bias per contiguous row.
            kernel = layer.params["kernel"].astype(out.dtype, copy=False)
            np.matmul(kernel.T, values.T.astype(out.dtype, copy=False), out=out)
            if layer.use_bias:
                out += layer.params["bias"].astype(out.dtype, copy=False)[:, np.newaxis]
            if not _activate_inplace(layer, out, buffers):
                out[...] = layer.activation.fn(out.T).T
            values = out.T
        else:
            values = layer.forward(values, training=False)
        outputs.append(values)
    return outputs
