"""The grid forward of a Dense stack in one compiled call, in float32, for pictures only.

A frame draws the decision map (100x100 points) and every neuron's heatmap (16x16) from one
inference forward over ~10,000 points; tiles do the same over 24x24. Those pictures are
quantized to 256 levels, so this forward trades the last bits for speed: float32 throughout,
tanh and exp by branch-free approximations that the compiler vectorizes (no libm call per
point), one unit-major row per unit written in place. Not for training or evaluation (those stay
float64 and bit-exact in the numpy engine and fast_kernels.py).

Accuracy (tests/engine/test_fast_grid_kernel.py checks it against the float64 forward):
tanh is Eigen's float32 rational approximation (within a few float32 ulp, relative, also near
0); exp is Cephes' expf (range reduction by ln 2, a degree-6 polynomial, 2^k built from its bits;
~1-2 ulp relative over [-87, 88], clamped outside), so sigmoid (by e^-|z|) and softmax (shifted
by the row maximum) keep their relative precision down to ~1e-38 as the float32 numpy path
did. NaN propagates as in numpy (a diverged net still draws as NaN).

Layer table, one row per Dense layer: ``layout[l] = (activation code, n_in, n_out)`` with the
codes of fast_kernels (linear, sigmoid, tanh, relu, leaky_relu, elu; softmax on the output);
``alphas[l]`` the activation's alpha. ``params`` holds, per layer, its kernel (n_in x n_out,
row-major) then its bias (n_out; zeros without one), in float32. ``xt`` is the points unit-major
(n_in of layer 0, n); ``out`` (n_in of layer 0 + the sum of n_out, n) receives a copy of the
points, then every layer's activations, unit-major;
``scratch`` two float32 rows of n, ``bits`` an int32 row of n and ``scale`` the same memory as
float32 (the 2^k of exp).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit

from app.engine.fast_kernels import ELU, LEAKY_RELU, LINEAR, RELU, SIGMOID, SOFTMAX, TANH

__all__ = [
    "ELU",
    "LEAKY_RELU",
    "LINEAR",
    "RELU",
    "SIGMOID",
    "SOFTMAX",
    "TANH",
    "grid_forward_kernel",
]

_F = TypeVar("_F", bound=Callable[..., Any])
_f = np.float32


def _jit(function: _F) -> _F:
    """njit for these loops: cached, no GIL, FMA contraction only (no fast-math assumptions
    about NaN or infinities: a diverged net's NaN must stay NaN)."""
    options: dict[str, Any] = {"nogil": True, "fastmath": {"contract"}, "error_model": "numpy"}
    try:
        return cast(_F, njit(cache=True, **options)(function))
    except RuntimeError:  # no writable cache directory
        return cast(_F, njit(cache=False, **options)(function))


# Eigen's generic_fast_tanh_float: odd rational approximation on [-7.9053, 7.9053] (tanh is
# +-1 in float32 beyond).
_T_CLAMP = _f(7.90531110763549805)
_A1, _A3, _A5 = _f(4.89352455891786e-03), _f(6.37261928875436e-04), _f(1.48572235717979e-05)
_A7, _A9 = _f(5.12229709037114e-08), _f(-8.60467152213735e-11)
_A11, _A13 = _f(2.00018790482477e-13), _f(-2.76076847742355e-16)
_B0, _B2 = _f(4.89352518554385e-03), _f(2.26843463243900e-03)
_B4, _B6 = _f(1.18534705686654e-04), _f(1.19825839466702e-06)
# Cephes expf.
_E_LOW, _E_HIGH = _f(-87.0), _f(88.0)
_LOG2E, _LN2_HI, _LN2_LO = _f(1.44269504088896341), _f(0.693359375), _f(-2.12194440e-4)
_P0, _P1, _P2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
_P3, _P4, _P5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
_HALF, _ONE, _ZERO = _f(0.5), _f(1.0), _f(0.0)


@_jit
def _tanh_row(row: np.ndarray) -> None:
    for i in range(row.shape[0]):
        x = row[i]
        x = -_T_CLAMP if x < -_T_CLAMP else x  # comparisons with NaN are false: NaN stays
        x = _T_CLAMP if x > _T_CLAMP else x
        x2 = x * x
        p = x2 * _A13 + _A11
        p = x2 * p + _A9
        p = x2 * p + _A7
        p = x2 * p + _A5
        p = x2 * p + _A3
        p = x2 * p + _A1
        q = x2 * _B6 + _B4
        q = x2 * q + _B2
        q = x2 * q + _B0
        row[i] = x * p / q


@_jit
def _exp_row(row: np.ndarray, bits: np.ndarray, scale: np.ndarray) -> None:
    """row <- e^row in place (bits and scale: one int32 row seen as int32 and as float32)."""
    n = row.shape[0]
    for i in range(n):
        x = row[i]
        x = _E_LOW if x < _E_LOW else x
        x = _E_HIGH if x > _E_HIGH else x
        k = np.floor(x * _LOG2E + _HALF)
        r = x - k * _LN2_HI - k * _LN2_LO
        p = _P0 * r + _P1
        p = p * r + _P2
        p = p * r + _P3
        p = p * r + _P4
        p = p * r + _P5
        row[i] = p * r * r + r + _ONE
        bits[i] = (np.int32(k) + np.int32(127)) << np.int32(23)  # 2^k: k + 127 in [2, 254]
    for i in range(n):
        row[i] *= scale[i]


@_jit
def _activate_row(
    code: int,
    alpha: np.float32,
    row: np.ndarray,
    spare: np.ndarray,
    bits: np.ndarray,
    scale: np.ndarray,
) -> None:
    """One unit's row of pre-activations -> activations, in place (softmax is done apart)."""
    n = row.shape[0]
    if code == TANH:
        _tanh_row(row)
    elif code == SIGMOID:
        for i in range(n):  # e = e^-|z|; 1/(1+e) for z >= 0, e/(1+e) below
            x = row[i]
            spare[i] = x if x < _ZERO else -x
        _exp_row(spare, bits, scale)
        for i in range(n):
            e = spare[i]
            inverse = _ONE / (_ONE + e)
            row[i] = e * inverse if row[i] < _ZERO else inverse
    elif code == RELU:
        for i in range(n):
            x = row[i]
            row[i] = _ZERO if x < _ZERO else x
    elif code == LEAKY_RELU:
        for i in range(n):
            x = row[i]
            row[i] = alpha * x if x < _ZERO else x
    elif code == ELU:
        for i in range(n):
            x = row[i]
            spare[i] = _ZERO if x >= _ZERO else x  # NaN goes through e^x and stays NaN
        _exp_row(spare, bits, scale)
        for i in range(n):
            x = row[i]
            row[i] = x if x >= _ZERO else alpha * (spare[i] - _ONE)


@_jit
def _softmax_rows(
    rows: np.ndarray, scratch: np.ndarray, bits: np.ndarray, scale: np.ndarray
) -> None:
    """Softmax across the unit rows of `rows` (k, n) for every point, shifted by the maximum."""
    k, n = rows.shape
    top, total = scratch[0], scratch[1]
    for i in range(n):
        top[i] = rows[0, i]
    for j in range(1, k):
        for i in range(n):
            x = rows[j, i]
            top[i] = x if x > top[i] else top[i]
    for i in range(n):
        total[i] = _ZERO
    for j in range(k):
        row = rows[j]
        for i in range(n):
            row[i] -= top[i]
        _exp_row(row, bits, scale)
        for i in range(n):
            total[i] += row[i]
    for j in range(k):
        for i in range(n):
            rows[j, i] /= total[i]


@_jit
def grid_forward_kernel(
    xt: np.ndarray,
    params: np.ndarray,
    layout: np.ndarray,
    alphas: np.ndarray,
    out: np.ndarray,
    scratch: np.ndarray,
    bits: np.ndarray,
    scale: np.ndarray,
) -> None:
    """Every Dense layer's activations at every point, unit-major, into `out` (see above)."""
    n_points, n = xt.shape
    for m in range(n_points):  # the points first (one array type for every layer's source)
        for i in range(n):
            out[m, i] = xt[m, i]
    at = 0  # next entry of params
    previous = 0  # the previous layer's first row of out
    row0 = n_points  # this layer's first row of out
    for layer in range(layout.shape[0]):
        code, n_in, n_out = layout[layer, 0], layout[layer, 1], layout[layer, 2]
        bias_at = at + n_in * n_out
        for j in range(n_out):
            row = out[row0 + j]
            b = params[bias_at + j]
            for i in range(n):
                row[i] = b
            for m in range(n_in):
                w = params[at + m * n_out + j]
                source = out[previous + m]
                for i in range(n):
                    row[i] += w * source[i]
            if code != SOFTMAX:
                _activate_row(code, alphas[layer], row, scratch[0], bits, scale)
        if code == SOFTMAX:
            _softmax_rows(out[row0 : row0 + n_out], scratch, bits, scale)
        at = bias_at + n_out
        previous = row0
        row0 += n_out


# ---- quantizing the pictures (app/sessions/frames.py's quantize and quantize_columns) ---------


@njit(cache=True, nogil=True, error_model="numpy")  # no fast-math: numpy's rounding, op by op
def _range(row: np.ndarray) -> tuple[float, float, int]:
    """(min, max, number of NaN) of a row."""
    low = high = row[0]
    nans = 0
    for i in range(row.shape[0]):
        v = row[i]
        low = v if v < low else low
        high = v if v > high else high
        nans += v != v
    return float(low), float(high), nans


@njit(cache=True, nogil=True, error_model="numpy")
def quantize_single(row: np.ndarray, codes: np.ndarray) -> tuple[float, float, bool]:
    """frames.quantize of a float32 row, in float32 as numpy computes it there:
    codes = uint8((v - low) * float32(255 / (high - low)) + 0.5). (low, high, done): not done
    (codes untouched) when the row has a NaN or an infinity (quantize's own path then)."""
    low, high, nans = _range(row)
    if nans or not (np.isfinite(low) and np.isfinite(high)):
        return low, high, False
    if high <= low:
        codes[:] = 0
        return low, high, True
    low32 = np.float32(low)
    scale = np.float32(255.0 / (high - low))
    half = np.float32(0.5)
    for i in range(row.shape[0]):
        codes[i] = np.uint8((row[i] - low32) * scale + half)
    return low, high, True


@njit(cache=True, nogil=True, error_model="numpy")
def quantize_units(
    rows: np.ndarray, codes: np.ndarray, lows: np.ndarray, highs: np.ndarray
) -> bool:
    """frames.quantize_columns of the columns rows[j] (one unit's picture each), in float64 as
    numpy computes it there: codes[j] = uint8((v - low) * (255 / (high - low)) + 0.5), or 0 for
    a constant picture. False (nothing to use) when any value is NaN or infinite."""
    for j in range(rows.shape[0]):
        low, high, nans = _range(rows[j])
        if nans or not (np.isfinite(low) and np.isfinite(high)):
            return False
        lows[j], highs[j] = low, high
    for j in range(rows.shape[0]):
        row, out = rows[j], codes[j]
        low, span = lows[j], highs[j] - lows[j]
        scale = 255.0 / span if span > 0.0 else 0.0
        for i in range(row.shape[0]):
            out[i] = np.uint8((np.float64(row[i]) - low) * scale + 0.5)
    return True
