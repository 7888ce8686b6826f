"""The numba kernel of the fast path: one whole training epoch as scalar loops.

Everything here works on plain arrays so it compiles once (``cache=True``) and can be tested
against textbook numpy; ``fast.py`` maps a model onto these arguments. The nets are tiny (units
<= 64, batch ~10), where numpy's per-call overhead dominates: one compiled call per epoch with
scalar loops over preallocated buffers removes it. Formulas follow the numpy engine term by
term (activations.py, losses.py, layers.py, regularizers.py, constraints.py, optimizers.py) so
both paths agree to rounding; matmul order and tanh differ in the last bit.

Layer table, one row per Dense layer from input to output:
``layout[l] = (activation code, use_bias, n_in, n_out)``;
``coeffs[l] = (activation alpha, kernel l1, kernel l2, bias l1, bias l2, max_norm or 0)``.
``arrays`` (flat 1-D views of the model's own arrays), with L layers:
``arrays[2l]`` kernel, ``arrays[2l + 1]`` bias (scratch zeros when use_bias is 0), then
``arrays[2L(s + 1) + 2l (+1)]`` optimizer slot s of that kernel (bias): SGD s=0 velocity;
Adam s=0 m, s=1 v; RMSprop s=0 accumulator, s=1 momentum; Adagrad s=0 accumulator; then
``arrays[6L + 2l (+1)]`` receives the last step's update (delta). Every entry has its
parameter's size; unused ones are scratch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit

LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTMAX = range(7)
MSE, BCE_SIGMOID, CCE_SOFTMAX, SPARSE_CCE_SOFTMAX = range(4)
SGD, ADAM, RMSPROP, ADAGRAD = range(4)
# hyper[] indices: the optimizer's numbers, read fresh every epoch (the rate may change live).
H_LR, H_MOMENTUM, H_NESTEROV, H_BETA_1, H_BETA_2, H_EPSILON, H_RHO = range(7)
N_HYPER = 7
N_LAYOUT = 4
N_COEFFS = 6
# train_epoch_kernel's error returns: BAD_ORDER - i (order[i]), BAD_LABEL - t (y[t]).
BAD_ORDER = -1
BAD_LABEL = -(1 << 40)

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(inline: bool = False, nrt: bool = True) -> Callable[[_F], _F]:
    """numba.njit with the project's options, typed for mypy.

    cache=True stores the compiled code in __pycache__ beside this file, or in the user's cache
    dir when that is read-only; with neither writable numba refuses to cache, and the kernel is
    compiled in each process instead. error_model="numpy": no ZeroDivisionError checks inside
    the loops (inputs are validated before the call). nrt=False compiles without numba's
    runtime: no allocation and no reference counting, whose atomic increments cost ~20% of an
    epoch when every helper call counts its array arguments.
    """

    def wrap(function: _F) -> _F:
        options: dict[str, Any] = {
            "nogil": True,
            "fastmath": False,
            "error_model": "numpy",
            "inline": "always" if inline else "never",
            "_nrt": nrt,
        }
        try:
            return cast(_F, njit(cache=True, **options)(function))
        except RuntimeError:
            return cast(_F, njit(cache=False, **options)(function))

    return wrap


# Cephes tanh: a rational approximation below 0.625 and exp() above, ~1 ulp. libm's tanh costs
# ~20 ns here and was the largest single cost of an epoch; this one ~5 ns.
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3


@_jit(inline=True)
def tanh(z: float) -> float:
    """tanh(z) to ~1 ulp (Cephes)."""
    a = abs(z)
    if a < 0.625:
        s = z * z
        return z + z * s * ((_TP0 * s + _TP1) * s + _TP2) / (((s + _TQ0) * s + _TQ1) * s + _TQ2)
    if a > 22.0:
        return 1.0 if z > 0.0 else -1.0
    t = 1.0 - 2.0 / (math.exp(2.0 * a) + 1.0)
    return t if z > 0.0 else -t


@_jit(inline=True)
def sigmoid(z: float) -> float:
    """1 / (1 + e^-z), written so neither branch overflows."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@_jit(inline=True)
def activate(code: int, z: float, alpha: float) -> float:
    """a = f(z) for every elementwise activation (softmax is done per row by the caller)."""
    if code == TANH:
        return tanh(z)
    if code == SIGMOID:
        return sigmoid(z)
    if code == RELU:
        return z if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return z if z > 0.0 else alpha * z
    if code == ELU:
        return z if z >= 0.0 else alpha * math.expm1(z)
    return z


@_jit(inline=True)
def derivative(code: int, z: float, a: float, alpha: float) -> float:
    """da/dz from z and the cached a, as activations.py's ``grad(z, a)``."""
    if code == TANH:
        return 1.0 - a * a
    if code == SIGMOID:
        return a * (1.0 - a)
    if code == RELU:
        return 1.0 if z > 0.0 else 0.0
    if code == LEAKY_RELU:
        return 1.0 if z > 0.0 else alpha
    if code == ELU:
        return 1.0 if z >= 0.0 else a + alpha
    return 1.0


@_jit(nrt=False)
def _dense_forward(
    a_in: np.ndarray,
    z_out: np.ndarray,
    a_out: np.ndarray,
    rows: int,
    params: np.ndarray,
    k_off: int,
    b_off: int,
    n_in: int,
    n_out: int,
    use_bias: bool,
    act: int,
    alpha: float,
) -> None:
    """z = a_in @ W + b; a = f(z) for the first `rows` rows (W, b read from flat `params`)."""
    for r in range(rows):
        for j in range(n_out):
            s = 0.0
            for i in range(n_in):
                s += a_in[r, i] * params[k_off + i * n_out + j]
            if use_bias:
                s += params[b_off + j]
            z_out[r, j] = s
        if act == SOFTMAX:
            # Row-wise e^(z - max) / sum, as activations.Softmax.
            top = z_out[r, 0]
            for j in range(1, n_out):
                top = max(top, z_out[r, j])
            total = 0.0
            for j in range(n_out):
                e = math.exp(z_out[r, j] - top)
                a_out[r, j] = e
                total += e
            for j in range(n_out):
                a_out[r, j] = a_out[r, j] / total
        else:
            for j in range(n_out):
                a_out[r, j] = activate(act, z_out[r, j], alpha)


@_jit()
def _offsets(layout: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Start of each layer's kernel and bias in the flat parameter vector, and its length."""
    n_layers = layout.shape[0]
    k_off = np.empty(n_layers, dtype=np.int64)
    b_off = np.empty(n_layers, dtype=np.int64)
    total = 0
    for layer in range(n_layers):
        k_off[layer] = total
        total += layout[layer, 2] * layout[layer, 3]
        b_off[layer] = total
        total += layout[layer, 3]
    return k_off, b_off, total


@_jit()
def _gather(arrays: list[np.ndarray], block: int, layout: np.ndarray, k_off: np.ndarray,
            b_off: np.ndarray, flat: np.ndarray) -> None:
    """Copy block `block` (0 params, 1 and 2 optimizer slots) of `arrays` into `flat`."""
    n_layers = layout.shape[0]
    for layer in range(n_layers):
        kernel = arrays[2 * n_layers * block + 2 * layer]
        bias = arrays[2 * n_layers * block + 2 * layer + 1]
        for i in range(kernel.shape[0]):
            flat[k_off[layer] + i] = kernel[i]
        for j in range(bias.shape[0]):
            flat[b_off[layer] + j] = bias[j]


@_jit()
def _scatter(flat: np.ndarray, block: int, layout: np.ndarray, k_off: np.ndarray,
             b_off: np.ndarray, arrays: list[np.ndarray]) -> None:
    """Copy `flat` back into block `block` of `arrays` (the model's own arrays)."""
    n_layers = layout.shape[0]
    for layer in range(n_layers):
        kernel = arrays[2 * n_layers * block + 2 * layer]
        bias = arrays[2 * n_layers * block + 2 * layer + 1]
        for i in range(kernel.shape[0]):
            kernel[i] = flat[k_off[layer] + i]
        for j in range(bias.shape[0]):
            bias[j] = flat[b_off[layer] + j]


@_jit(nrt=False)
def _batch_loss(
    loss: int, y: np.ndarray, order: np.ndarray, start: int, rows: int, z: np.ndarray,
    a: np.ndarray, k: int,
) -> float:
    """The batch's data loss as the numpy engine computes it (fused losses from the logits)."""
    total = 0.0
    for r in range(rows):
        t = order[start + r]
        if loss == MSE:
            for j in range(k):
                d = a[r, j] - y[t, j]
                total += d * d
        elif loss == BCE_SIGMOID:
            # max(z, 0) - z y + log(1 + e^-|z|): no overflow for any z.
            for j in range(k):
                zj = z[r, j]
                total += max(zj, 0.0) - zj * y[t, j] + math.log1p(math.exp(-abs(zj)))
        else:
            # sum_k y (logsumexp(z) - z) with the max shift.
            top = z[r, 0]
            for j in range(1, k):
                top = max(top, z[r, j])
            sum_exp = 0.0
            for j in range(k):
                sum_exp += math.exp(z[r, j] - top)
            log_sum_exp = top + math.log(sum_exp)
            if loss == SPARSE_CCE_SOFTMAX:
                total += log_sum_exp - z[r, int(y[t, 0])]
            else:
                for j in range(k):
                    total += y[t, j] * (log_sum_exp - z[r, j])
    if loss in (MSE, BCE_SIGMOID):
        return total / (rows * k)
    return total / rows


@_jit(nrt=False)
def _output_delta(
    loss: int, act: int, alpha: float, y: np.ndarray, order: np.ndarray, start: int, rows: int,
    z: np.ndarray, a: np.ndarray, k: int, delta: np.ndarray,
) -> None:
    """dL/dz of the output layer: fused for sigmoid+BCE and softmax+CCE, else the chain rule."""
    size = rows * k
    for r in range(rows):
        t = order[start + r]
        if loss == BCE_SIGMOID:
            for j in range(k):
                delta[r, j] = (a[r, j] - y[t, j]) / size
        elif loss == SPARSE_CCE_SOFTMAX:
            label = int(y[t, 0])
            for j in range(k):
                delta[r, j] = (a[r, j] - (1.0 if j == label else 0.0)) / rows
        elif loss == CCE_SOFTMAX:
            # (a sum_k y - y) / n: soft targets need not sum to 1.
            y_sum = 0.0
            for j in range(k):
                y_sum += y[t, j]
            for j in range(k):
                delta[r, j] = (a[r, j] * y_sum - y[t, j]) / rows
        else:
            # mse: dL/da = (2 / (n k)) (a - y), then through the output activation.
            for j in range(k):
                delta[r, j] = (2.0 / size) * (a[r, j] - y[t, j])
            if act == SOFTMAX:
                # The Jacobian product: dz_j = a_j (da_j - sum_i da_i a_i).
                dot = 0.0
                for j in range(k):
                    dot += delta[r, j] * a[r, j]
                for j in range(k):
                    delta[r, j] = a[r, j] * (delta[r, j] - dot)
            elif act != LINEAR:
                for j in range(k):
                    delta[r, j] = delta[r, j] * derivative(act, z[r, j], a[r, j], alpha)


@_jit(inline=True)
def _sign(w: float) -> float:
    """np.sign for floats (0 at 0)."""
    if w > 0.0:
        return 1.0
    if w < 0.0:
        return -1.0
    return 0.0


@_jit(nrt=False)
def _penalty_sum(params: np.ndarray, start: int, stop: int, l1: float, l2: float) -> float:
    """l1 sum|w| + l2 sum w^2 over params[start:stop] (Keras's form)."""
    s1 = 0.0
    s2 = 0.0
    for i in range(start, stop):
        s1 += abs(params[i])
        s2 += params[i] * params[i]
    return l1 * s1 + l2 * s2


@_jit(nrt=False)
def _penalty(params: np.ndarray, layout: np.ndarray, coeffs: np.ndarray, k_off: np.ndarray,
             b_off: np.ndarray) -> float:
    """The model's penalty: per layer kernel term plus bias term, summed over layers."""
    total = 0.0
    for layer in range(layout.shape[0]):
        layer_total = 0.0
        k_l1, k_l2 = coeffs[layer, 1], coeffs[layer, 2]
        b_l1, b_l2 = coeffs[layer, 3], coeffs[layer, 4]
        if k_l1 != 0.0 or k_l2 != 0.0:
            layer_total += _penalty_sum(params, k_off[layer], b_off[layer], k_l1, k_l2)
        if layout[layer, 1] != 0 and (b_l1 != 0.0 or b_l2 != 0.0):
            n_out = layout[layer, 3]
            layer_total += _penalty_sum(params, b_off[layer], b_off[layer] + n_out, b_l1, b_l2)
        total += layer_total
    return total


@_jit(nrt=False)
def _add_penalty_grad(params: np.ndarray, grads: np.ndarray, start: int, stop: int, l1: float,
                      l2: float) -> None:
    """grads += l1 sign(w) + 2 l2 w (regularizers.L1L2.grad; the absent term adds exact 0)."""
    two_l2 = 2.0 * l2
    for i in range(start, stop):
        grads[i] = grads[i] + (l1 * _sign(params[i]) + two_l2 * params[i])


@_jit(nrt=False)
def _update(opt: int, hyper: np.ndarray, alpha_t: float, params: np.ndarray, grads: np.ndarray,
            slot0: np.ndarray, slot1: np.ndarray, deltas: np.ndarray, start: int,
            stop: int) -> None:
    """One optimizer step on params[start:stop] (Keras 3's rules): w += delta, delta kept."""
    lr = hyper[H_LR]
    momentum = hyper[H_MOMENTUM]
    epsilon = hyper[H_EPSILON]
    if opt == SGD:
        if momentum != 0.0:
            nesterov = hyper[H_NESTEROV] != 0.0
            for i in range(start, stop):
                g = grads[i]
                velocity = slot0[i] * momentum - g * lr
                slot0[i] = velocity
                deltas[i] = velocity * momentum - g * lr if nesterov else velocity
        else:
            for i in range(start, stop):
                deltas[i] = -(grads[i] * lr)
    elif opt == ADAM:
        one_minus_beta_1 = 1.0 - hyper[H_BETA_1]
        one_minus_beta_2 = 1.0 - hyper[H_BETA_2]
        for i in range(start, stop):
            g = grads[i]
            m = slot0[i] + (g - slot0[i]) * one_minus_beta_1
            v = slot1[i] + (g * g - slot1[i]) * one_minus_beta_2
            slot0[i] = m
            slot1[i] = v
            deltas[i] = -((m * alpha_t) / (math.sqrt(v) + epsilon))
    elif opt == RMSPROP:
        rho = hyper[H_RHO]
        for i in range(start, stop):
            g = grads[i]
            accumulator = rho * slot0[i] + (1.0 - rho) * (g * g)
            slot0[i] = accumulator
            increment = (lr * g) / math.sqrt(accumulator + epsilon)
            if momentum > 0.0:
                increment = momentum * slot1[i] + increment
                slot1[i] = increment
            deltas[i] = -increment
    else:
        for i in range(start, stop):
            g = grads[i]
            accumulator = slot0[i] + g * g
            slot0[i] = accumulator
            deltas[i] = -((lr * g) / math.sqrt(accumulator + epsilon))
    for i in range(start, stop):
        params[i] = params[i] + deltas[i]


@_jit(nrt=False)
def _max_norm(params: np.ndarray, k_off: int, n_in: int, n_out: int, limit: float) -> None:
    """Clip each unit's incoming weights (a kernel column) to norm <= limit, others untouched."""
    for j in range(n_out):
        s = 0.0
        for i in range(n_in):
            w = params[k_off + i * n_out + j]
            s += w * w
        norm = math.sqrt(s)
        if norm > limit:
            scale = limit / norm
            for i in range(n_in):
                params[k_off + i * n_out + j] = params[k_off + i * n_out + j] * scale


@_jit(nrt=False)
def _epoch_steps(
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    layout: np.ndarray,
    coeffs: np.ndarray,
    loss: int,
    opt: int,
    hyper: np.ndarray,
    iterations: int,
    losses_out: np.ndarray,
    grad_norms_out: np.ndarray,
    k_off: np.ndarray,
    b_off: np.ndarray,
    params: np.ndarray,
    slot0: np.ndarray,
    slot1: np.ndarray,
    grads: np.ndarray,
    deltas: np.ndarray,
    acts: np.ndarray,
    zs: np.ndarray,
    delta: np.ndarray,
    delta_below: np.ndarray,
    regularized: bool,
) -> int:
    """The epoch's steps on flat parameters and preallocated buffers (see train_epoch_kernel).

    acts: (L + 1, bs, width), block 0 the batch's inputs, block l + 1 layer l's outputs;
    zs: (L, bs, width); delta, delta_below: (bs, width), swapped layer by layer. Compiled
    without numba's runtime: it allocates nothing, and its array views and helper calls count
    no references (atomic increments that cost ~20% of an epoch with the runtime on).
    """
    n_layers = layout.shape[0]
    n = order.shape[0]
    k = layout[n_layers - 1, 3]
    for batch in range((n + batch_size - 1) // batch_size):
        start = batch * batch_size
        rows = min(batch_size, n - start)
        # Forward: gather the batch rows, then z and a layer by layer.
        for r in range(rows):
            t = order[start + r]
            for i in range(x.shape[1]):
                acts[0, r, i] = x[t, i]
        for layer in range(n_layers):
            _dense_forward(
                acts[layer], zs[layer], acts[layer + 1], rows, params, k_off[layer],
                b_off[layer], layout[layer, 2], layout[layer, 3], layout[layer, 1] != 0,
                layout[layer, 0], coeffs[layer, 0],
            )
        # Loss: data loss, then the penalty at the weights this step starts from (model.py).
        value = _batch_loss(loss, y, order, start, rows, zs[n_layers - 1], acts[n_layers], k)
        if regularized:
            value += _penalty(params, layout, coeffs, k_off, b_off)
        losses_out[batch] = value
        # Backward, output layer first: dW = a_in^T delta, db = sum_r delta, then the delta of
        # the layer below, (delta @ W^T) * f'(z_below).
        _output_delta(
            loss, layout[n_layers - 1, 0], coeffs[n_layers - 1, 0], y, order, start, rows,
            zs[n_layers - 1], acts[n_layers], k, delta,
        )
        for layer in range(n_layers - 1, -1, -1):
            n_in, n_out = layout[layer, 2], layout[layer, 3]
            ko, bo = k_off[layer], b_off[layer]
            for i in range(n_in):
                for j in range(n_out):
                    s = 0.0
                    for r in range(rows):
                        s += acts[layer, r, i] * delta[r, j]
                    grads[ko + i * n_out + j] = s
            for j in range(n_out):
                s = 0.0
                for r in range(rows):
                    s += delta[r, j]
                grads[bo + j] = s
            if layer > 0:
                act_below = layout[layer - 1, 0]
                alpha_below = coeffs[layer - 1, 0]
                for r in range(rows):
                    for i in range(n_in):
                        s = 0.0
                        for j in range(n_out):
                            s += delta[r, j] * params[ko + i * n_out + j]
                        if act_below != LINEAR:
                            s = s * derivative(act_below, zs[layer - 1, r, i],
                                               acts[layer, r, i], alpha_below)
                        delta_below[r, i] = s
                delta, delta_below = delta_below, delta
        # Penalty gradients, the gradient norms, then every update and every constraint.
        for layer in range(n_layers):
            n_in, n_out = layout[layer, 2], layout[layer, 3]
            ko, bo = k_off[layer], b_off[layer]
            if coeffs[layer, 1] != 0.0 or coeffs[layer, 2] != 0.0:
                _add_penalty_grad(params, grads, ko, bo, coeffs[layer, 1], coeffs[layer, 2])
            if layout[layer, 1] != 0 and (coeffs[layer, 3] != 0.0 or coeffs[layer, 4] != 0.0):
                _add_penalty_grad(params, grads, bo, bo + n_out, coeffs[layer, 3], coeffs[layer, 4])
            stop = bo + n_out if layout[layer, 1] != 0 else bo
            norm_sq = 0.0
            for i in range(ko, stop):
                norm_sq += grads[i] * grads[i]
            grad_norms_out[layer] = math.sqrt(norm_sq)
        alpha_t = 0.0
        if opt == ADAM:
            # Keras 3: alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), t = iterations + 1.
            local_step = float(iterations + 1)
            beta_1_power = hyper[H_BETA_1] ** local_step
            beta_2_power = hyper[H_BETA_2] ** local_step
            alpha_t = hyper[H_LR] * math.sqrt(1.0 - beta_2_power) / (1.0 - beta_1_power)
        for layer in range(n_layers):
            ko, bo = k_off[layer], b_off[layer]
            stop = bo + layout[layer, 3] if layout[layer, 1] != 0 else bo
            _update(opt, hyper, alpha_t, params, grads, slot0, slot1, deltas, ko, stop)
        for layer in range(n_layers):
            if coeffs[layer, 5] > 0.0:
                _max_norm(params, k_off[layer], layout[layer, 2], layout[layer, 3],
                          coeffs[layer, 5])
        iterations += 1
    return iterations


@_jit()
def train_epoch_kernel(
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    arrays: list[np.ndarray],
    layout: np.ndarray,
    coeffs: np.ndarray,
    loss: int,
    opt: int,
    hyper: np.ndarray,
    iterations: int,
    losses_out: np.ndarray,
    grad_norms_out: np.ndarray,
) -> int:
    """One epoch of minibatch steps over x[order]; the model's arrays are updated in place.

    x: (n, n_in); y: (n, k) targets, or (n, 1) class indices for sparse CCE; order: (n,)
    sample indices; losses_out: (ceil(n / batch_size),) each batch's loss plus penalty, before
    its update; grad_norms_out: (L,) each layer's gradient norm at the last step; block 3 of
    `arrays` receives the last step's deltas (the optimizer's last_update). Returns the
    optimizer's iteration count after the epoch; or, before any update, BAD_ORDER - i when
    order[i] is not a row of x, BAD_LABEL - t when label y[t] of a sparse loss is not a class
    index.
    """
    n_layers = layout.shape[0]
    n = order.shape[0]
    k = layout[n_layers - 1, 3]
    # Indices are not bounds-checked in compiled code: refuse anything that would read outside
    # x, y or the output row before touching the weights.
    for i in range(n):
        if not 0 <= order[i] < min(x.shape[0], y.shape[0]):
            return BAD_ORDER - i
    if loss == SPARSE_CCE_SOFTMAX:
        for t in range(y.shape[0]):
            label = y[t, 0]
            if not (label >= 0.0 and label < k and label == math.floor(label)):
                return BAD_LABEL - t
    width = x.shape[1]
    for layer in range(n_layers):
        width = max(width, layout[layer, 3])
    k_off, b_off, total = _offsets(layout)
    # The epoch runs on flat copies (no per-batch list access); written back at the end.
    params = np.empty(total)
    slot0 = np.empty(total)
    slot1 = np.empty(total)
    grads = np.empty(total)
    deltas = np.zeros(total)
    _gather(arrays, 0, layout, k_off, b_off, params)
    _gather(arrays, 1, layout, k_off, b_off, slot0)
    _gather(arrays, 2, layout, k_off, b_off, slot1)
    regularized = False
    for layer in range(n_layers):
        for c in range(1, 5):
            regularized = regularized or coeffs[layer, c] != 0.0
    bs = max(1, min(batch_size, n))
    acts = np.empty((n_layers + 1, bs, width))
    zs = np.empty((n_layers, bs, width))
    delta = np.empty((bs, width))
    delta_below = np.empty((bs, width))
    iterations = _epoch_steps(
        x, y, order, batch_size, layout, coeffs, loss, opt, hyper, iterations, losses_out,
        grad_norms_out, k_off, b_off, params, slot0, slot1, grads, deltas, acts, zs, delta,
        delta_below, regularized,
    )
    _scatter(params, 0, layout, k_off, b_off, arrays)
    _scatter(slot0, 1, layout, k_off, b_off, arrays)
    _scatter(slot1, 2, layout, k_off, b_off, arrays)
    if n > 0:
        _scatter(deltas, 3, layout, k_off, b_off, arrays)
    return iterations
