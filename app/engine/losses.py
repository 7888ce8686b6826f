"""Losses (mean over the batch, as Keras), each with its gradient beside it, and `LOSSES`.

Shapes: y_pred is (n, k). y_true has the same shape, or (n,) when k == 1; for
sparse_categorical_crossentropy it holds integer class labels, shape (n,) or (n, 1).
Cross-entropies of probabilities clip them to [EPSILON, 1 - EPSILON] as Keras does, so the
value is always finite; the model fuses sigmoid+BCE and softmax+CCE through `grad_logits` and
`fn_from_logits`, which stay exact and finite for any logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import Spec, build

Array = npt.NDArray[np.float64]

KIND = "loss"

# Keras's backend.epsilon(): the clip keeping log() of a probability finite.
EPSILON = 1e-7


def _as_2d_pair(name: str, y_true: npt.ArrayLike, y_pred: Array) -> tuple[Array, Array]:
    """Check shapes and return (y_true, y_pred) as matching (n, k) float arrays."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_pred.ndim != 2 or y_pred.shape[0] == 0:
        raise ValueError(f"{name}: y_pred has shape {y_pred.shape}; expected (n, k) with n >= 1")
    if y_true.ndim == 1 and y_pred.shape[1] == 1 and y_true.shape[0] == y_pred.shape[0]:
        y_true = y_true.reshape(-1, 1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
            "expected the same shape (or (n,) for a single output)"
        )
    return y_true, y_pred


def _one_hot_labels(name: str, labels: npt.ArrayLike, y_pred: Array) -> Array:
    """Integer labels of shape (n,) or (n, 1), each in [0, k), as one-hot rows (n, k)."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_pred.ndim != 2 or y_pred.shape[0] == 0:
        raise ValueError(f"{name}: y_pred has shape {y_pred.shape}; expected (n, k) with n >= 1")
    n, k = y_pred.shape
    raw = np.asarray(labels)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.shape != (n,):
        raise ValueError(
            f"{name}: y_true has shape {np.shape(labels)}; expected integer labels of shape "
            f"({n},) or ({n}, 1) for y_pred of shape {y_pred.shape}"
        )
    if raw.dtype.kind not in "iuf" or raw.dtype == np.bool_:
        raise ValueError(f"{name}: y_true has dtype {raw.dtype}; expected integer class labels")
    if raw.dtype.kind == "f":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            raise ValueError(
                f"{name}: label {raw[bad][0].item()!r} is not an integer; expected class indices"
            )
    out_of_range = (raw < 0) | (raw >= k)
    if out_of_range.any():
        raise ValueError(
            f"{name}: label {raw[out_of_range][0].item()!r} is out of range; "
            f"expected 0 <= label < {k}"
        )
    one_hot = np.zeros((n, k), dtype=np.float64)
    one_hot[np.arange(n), raw.astype(np.intp)] = 1.0
    return one_hot


class Loss:
    """Base class: a loss averaged over the batch, and its gradient wrt y_pred."""

    name: str = "loss"
    # The output activation whose gradient this loss fuses (dL/dz = (a - y)/n), if any.
    fused_activation: str | None = None

    def fn(self, y_true: npt.ArrayLike, y_pred: Array) -> float:
        """The loss value: mean over the batch."""
        raise NotImplementedError

    def grad(self, y_true: npt.ArrayLike, y_pred: Array) -> Array:
        """dL/dy_pred, shape of y_pred."""
        raise NotImplementedError

    def grad_logits(self, y_true: npt.ArrayLike, a: Array) -> Array:
        """dL/dz through the fused output activation, from its output a."""
        raise ValueError(f"loss '{self.name}' has no fused output activation")

    def fn_from_logits(self, y_true: npt.ArrayLike, z: Array) -> float:
        """The loss of fused_activation(z), computed stably from the logits z."""
        raise ValueError(f"loss '{self.name}' has no fused output activation")

    def get_config(self) -> dict[str, float]:
        """Parameters that rebuild this loss (none for the built-in ones)."""
        return {}

    def __call__(self, y_true: npt.ArrayLike, y_pred: Array) -> float:
        return self.fn(y_true, y_pred)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """mean_batch(mean_outputs((y_pred - y)^2)); gradient 2 (y_pred - y) / (n k)."""

    name = "mse"

    def fn(self, y_true: npt.ArrayLike, y_pred: Array) -> float:
        y, p = _as_2d_pair(self.name, y_true, y_pred)
        # Every row has k outputs, so mean over outputs then over the batch is the grand mean
        # (sum / size is np.mean's own arithmetic, without its Python overhead).
        return float(np.square(p - y).sum()) / p.size

    def grad(self, y_true: npt.ArrayLike, y_pred: Array) -> Array:
        y, p = _as_2d_pair(self.name, y_true, y_pred)
        result: Array = (2.0 / p.size) * (p - y)
        return result


class BinaryCrossentropy(Loss):
    """-mean(y log p + (1 - y) log(1 - p)) over outputs and batch, p clipped as Keras."""

    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def fn(self, y_true: npt.ArrayLike, y_pred: Array) -> float:
        y, p = _as_2d_pair(self.name, y_true, y_pred)
        p = np.clip(p, EPSILON, 1.0 - EPSILON)
        return -float((y * np.log(p) + (1.0 - y) * np.log1p(-p)).sum()) / p.size

    def grad(self, y_true: npt.ArrayLike, y_pred: Array) -> Array:
        """(p - y) / (p (1 - p) n k) inside the clip; 0 where the clip flattens the loss."""
        y, p = _as_2d_pair(self.name, y_true, y_pred)
        inside = (p >= EPSILON) & (p <= 1.0 - EPSILON)
        q = np.clip(p, EPSILON, 1.0 - EPSILON)
        return np.where(inside, (q - y) / (q * (1.0 - q) * p.size), 0.0)

    def grad_logits(self, y_true: npt.ArrayLike, a: Array) -> Array:
        """dL/dz = (a - y) / (n k) for a = sigmoid(z): exact, and finite when saturated."""
        y, p = _as_2d_pair(self.name, y_true, a)
        result: Array = (p - y) / p.size
        return result

    def fn_from_logits(self, y_true: npt.ArrayLike, z: Array) -> float:
        """mean(softplus(z) - z y): BCE of sigmoid(z); logaddexp(0, z) never overflows."""
        y, logits = _as_2d_pair(self.name, y_true, z)
        return float((np.logaddexp(0.0, logits) - logits * y).sum()) / logits.size


class CategoricalCrossentropy(Loss):
    """-mean_batch(sum_k y log p): rows of p renormalised to sum 1, then clipped, as Keras."""

    name = "categorical_crossentropy"
    fused_activation = "softmax"

    def _targets(self, y_true: npt.ArrayLike, y_pred: Array) -> tuple[Array, Array]:
        return _as_2d_pair(self.name, y_true, y_pred)

    def fn(self, y_true: npt.ArrayLike, y_pred: Array) -> float:
        y, p = self._targets(y_true, y_pred)
        q = np.clip(p / p.sum(axis=-1, keepdims=True), EPSILON, 1.0 - EPSILON)
        return float(-np.sum(y * np.log(q)) / p.shape[0])

    def grad(self, y_true: npt.ArrayLike, y_pred: Array) -> Array:
        """Chain rule through the renormalisation q = p / s: dL/dp = (g - sum(g q)) / s."""
        y, p = self._targets(y_true, y_pred)
        s = p.sum(axis=-1, keepdims=True)
        q = p / s
        inside = (q >= EPSILON) & (q <= 1.0 - EPSILON)
        g = np.where(inside, -y / np.clip(q, EPSILON, 1.0), 0.0) / p.shape[0]
        result: Array = (g - (g * q).sum(axis=-1, keepdims=True)) / s
        return result

    def grad_logits(self, y_true: npt.ArrayLike, a: Array) -> Array:
        """dL/dz = (a sum_k y - y) / n for a = softmax(z); (a - y)/n for one-hot targets."""
        y, p = self._targets(y_true, a)
        result: Array = (p * y.sum(axis=-1, keepdims=True) - y) / p.shape[0]
        return result

    def fn_from_logits(self, y_true: npt.ArrayLike, z: Array) -> float:
        """mean_batch(sum_k y (logsumexp(z) - z)): CCE of softmax(z) via a shifted log-sum-exp."""
        y, logits = self._targets(y_true, z)
        shift = logits.max(axis=-1, keepdims=True)
        log_sum_exp = shift + np.log(np.exp(logits - shift).sum(axis=-1, keepdims=True))
        return float(np.sum(y * (log_sum_exp - logits)) / logits.shape[0])


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical crossentropy with integer class labels, shape (n,) or (n, 1)."""

    name = "sparse_categorical_crossentropy"

    def _targets(self, y_true: npt.ArrayLike, y_pred: Array) -> tuple[Array, Array]:
        p = np.asarray(y_pred, dtype=np.float64)
        return _one_hot_labels(self.name, y_true, p), p


# The registry entry type by the name docs/design.md gives it.
LossSpec = Spec[Loss]

LOSSES: dict[str, LossSpec] = {
    "mse": Spec(
        "mse",
        "Mean squared error: regression with a linear output.",
        MeanSquaredError,
        extra={"problems": ["regression"], "output_activation": "linear"},
    ),
    "binary_crossentropy": Spec(
        "binary_crossentropy",
        "Log loss of a sigmoid output for 0/1 labels.",
        BinaryCrossentropy,
        extra={"problems": ["binary"], "output_activation": "sigmoid"},
    ),
    "categorical_crossentropy": Spec(
        "categorical_crossentropy",
        "Log loss of a softmax output for one-hot targets.",
        CategoricalCrossentropy,
        extra={"problems": ["multiclass"], "output_activation": "softmax"},
    ),
    "sparse_categorical_crossentropy": Spec(
        "sparse_categorical_crossentropy",
        "Log loss of a softmax output for integer class labels.",
        SparseCategoricalCrossentropy,
        extra={"problems": ["multiclass"], "output_activation": "softmax"},
    ),
}


def get(identifier: str | Loss, **params: Any) -> Loss:
    """The loss named `identifier` (or the instance itself)."""
    if isinstance(identifier, Loss):
        if params:
            raise ValueError(f"loss {identifier!r} is already built; got params {params}")
        return identifier
    return build(LOSSES, KIND, identifier, params)
