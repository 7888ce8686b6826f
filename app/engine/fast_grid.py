"""The inference forward over many points (the decision grid, the neuron heatmaps).

float64: numpy with preallocated unit-major buffers (numpy's SIMD tanh, ~1.6 ns a value, beats
a compiled loop calling libm's tanh, ~20 ns). float32, for pictures quantized to 256 levels:
a stack of Dense layers goes through one compiled call (fast_grid_kernel.py: the whole forward
with vectorized tanh and exp approximations, ~4x cheaper than the numpy float32 path on the
default net's 10,256 grid points); any other stack takes the numpy path in float32.
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine import activations
from app.engine import fast_grid_kernel as grid_kernel
from app.engine.layers import Dense

Array = npt.NDArray[np.float64]


@dataclass
class _GridBuffers:
    """Preallocated outputs for one model and one number of points, unit-major (units, n).

    `block` holds the input's rows (the compiled float32 forward copies the points there),
    then every layer's outputs (`outputs` are views of it); `bits` an int32 row of n and
    `scale` the same memory as float32 (the compiled forward's exp).
    """

    outputs: list[Array]
    scratch: Array
    negative: npt.NDArray[np.bool_]
    block: Array
    bits: npt.NDArray[np.int32]
    scale: Array


_grid_buffers: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], _GridBuffers]] = (
    weakref.WeakKeyDictionary()
)
_MAX_GRID_SIZES = 4  # distinct point counts cached per model (output grid, neuron grid, ...)
# Buffers shared by every model of the same layer widths (forward_all(shared=True)): a worker
# drawing 100 sessions' grids in turn then reuses one set that stays in the CPU's cache.
_shared_buffers: dict[tuple[tuple[int, ...], int, str, int], _GridBuffers] = {}
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


def _new_buffers(widths: list[int], n: int, dtype: npt.DTypeLike, n_in: int) -> _GridBuffers:
    widest = max(2, *widths)
    block = np.empty((n_in + sum(widths), n), dtype)
    ends = np.cumsum([n_in, *widths]).tolist()
    bits = np.empty(n, np.int32)
    return _GridBuffers(
        outputs=[block[start:end] for start, end in itertools.pairwise(ends)],
        scratch=np.empty(n * widest, dtype),
        negative=np.empty(n * widest, dtype=np.bool_),
        block=block,
        bits=bits,
        scale=bits.view(np.float32),
    )


def _buffers_for(
    model: Any, n: int, dtype: npt.DTypeLike = np.float64, shared: bool = False
) -> _GridBuffers:
    """This model's buffers for n points of `dtype` (or the shared ones for its layer widths),
    allocated on first use."""
    widths = [layer.n_out for layer in model.layers]
    n_in = int(getattr(model, "input_dim", 0) or 0)
    if shared:
        shared_key = (tuple(widths), n, np.dtype(dtype).str, n_in)
        found = _shared_buffers.get(shared_key)
        if found is None:
            if len(_shared_buffers) >= _MAX_SHARED:
                _shared_buffers.clear()
            found = _shared_buffers[shared_key] = _new_buffers(widths, n, dtype, n_in)
        return found
    per_model = _grid_buffers.setdefault(model, {})
    key = (n, np.dtype(dtype).str)
    buffers = per_model.get(key)
    if (buffers is None or [out.shape[0] for out in buffers.outputs] != widths
            or buffers.block.shape[0] != n_in + sum(widths)):
        if len(per_model) >= _MAX_GRID_SIZES:
            per_model.clear()
        buffers = per_model[key] = _new_buffers(widths, n, dtype, n_in)
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

    In float32, a stack of Dense layers (linear, sigmoid, tanh, relu, leaky_relu, elu; softmax
    last) is computed by one compiled call (fast_grid_kernel.py): its tanh and exp are
    approximations within a few float32 ulp. Points given unit-major, as the transpose of a
    C-contiguous (input_dim, n) array (x.T), are read without a copy.
    """
    if np.dtype(dtype) == np.float32:
        table = _kernel_table(model)
        if table is not None:
            return _forward_compiled(model, points, table, shared)
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


# The activation codes the compiled float32 forward takes (softmax only on the output).
_KERNEL_CODES: dict[type[activations.ActivationFunction], int] = {
    activations.Linear: grid_kernel.LINEAR,
    activations.Sigmoid: grid_kernel.SIGMOID,
    activations.Tanh: grid_kernel.TANH,
    activations.ReLU: grid_kernel.RELU,
    activations.LeakyReLU: grid_kernel.LEAKY_RELU,
    activations.ELU: grid_kernel.ELU,
    activations.Softmax: grid_kernel.SOFTMAX,
}
# Layer tables by (codes, widths): one array per net shape, not one per call.
_tables: dict[tuple[tuple[int, int, int], ...], npt.NDArray[np.int64]] = {}
_MAX_TABLES = 64
# Whether the compiled forward loads (False after a failure: the numpy path from then on).
_kernel_ok = True


def _kernel_table(model: Any) -> tuple[npt.NDArray[np.int64], list[float]] | None:
    """The compiled forward's layer table and alphas for `model`, or None when it has a layer
    the kernel does not take (any non-Dense layer, another activation, softmax inside)."""
    if not _kernel_ok:
        return None
    layers = getattr(model, "layers", None)
    if not layers:
        return None
    rows: list[tuple[int, int, int]] = []
    alphas: list[float] = []
    last = len(layers) - 1
    for position, layer in enumerate(layers):
        if type(layer) is not Dense or layer.activation is None:
            return None
        code = _KERNEL_CODES.get(type(layer.activation))
        if code is None or (code == grid_kernel.SOFTMAX and position != last):
            return None
        rows.append((code, layer.n_in, layer.n_out))
        alphas.append(float(getattr(layer.activation, "alpha", 0.0)))
    key = tuple(rows)
    table = _tables.get(key)
    if table is None:
        if len(_tables) >= _MAX_TABLES:
            _tables.clear()
        table = _tables[key] = np.array(rows, dtype=np.int64)
        table.flags.writeable = False
    return table, alphas


def _forward_compiled(
    model: Any, points: npt.ArrayLike, table: tuple[npt.NDArray[np.int64], list[float]],
    shared: bool,
) -> list[Array]:
    """forward_all in float32 through grid_forward_kernel (see forward_all)."""
    global _kernel_ok
    layout, alphas = table
    given = np.asarray(points)
    input_dim = getattr(model, "input_dim", None)
    if given.ndim != 2 or given.shape[0] == 0 or given.shape[1] != input_dim:
        raise ValueError(
            f"points must have shape (n, {input_dim}) with n >= 1, got {given.shape}"
        )
    xt = given.T
    if xt.dtype != np.float32 or not xt.flags.c_contiguous:
        xt = np.ascontiguousarray(xt, dtype=np.float32)
    if xt.flags.writeable:  # one compiled signature: the points always read-only
        xt = xt.view()
        xt.flags.writeable = False
    n = xt.shape[1]
    buffers = _buffers_for(model, n, np.float32, shared)
    pieces: list[npt.NDArray[Any]] = []
    for layer in model.layers:
        pieces.append(layer.params["kernel"].ravel())
        pieces.append(layer.params["bias"] if layer.use_bias else np.zeros(layer.n_out))
    params = np.concatenate(pieces).astype(np.float32)
    scratch = buffers.scratch[: 2 * n].reshape(2, n)
    try:
        grid_kernel.grid_forward_kernel(
            xt, params, layout, np.array(alphas, dtype=np.float32), buffers.block, scratch,
            buffers.bits, buffers.scale,
        )
    except Exception:  # numba missing or failing here: the numpy float32 path from now on
        _kernel_ok = False
        return forward_all(model, points, np.float32, shared)
    return [out.T for out in buffers.outputs]
