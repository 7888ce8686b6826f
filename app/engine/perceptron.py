"""The classic perceptron: one layer of linear threshold units trained by the perceptron rule."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.engine import activations

Array = npt.NDArray[np.float64]


class Perceptron:
    """A layer of LTUs, y_hat = step(w^T [1, x]), trained one instance at a time.

    The bias is the weight on a constant input 1 (row 0 of `weights`: (1 + n_inputs,
    n_outputs)). Weights start at zero, as the lecture's; the rule is
    w <- w + eta (y - y_hat) x. It converges on linearly separable data and never settles
    on XOR, where the weights cycle.
    """

    def __init__(
        self, n_inputs: int, n_outputs: int = 1, learning_rate: float = 1.0, seed: int = 0
    ) -> None:
        for field, value in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Perceptron {field} must be a positive integer, got {value!r}")
        if not (np.isfinite(learning_rate) and learning_rate > 0):
            raise ValueError(f"Perceptron learning_rate must be > 0, got {learning_rate!r}")
        self.n_inputs, self.n_outputs = n_inputs, n_outputs
        self.learning_rate = float(learning_rate)
        self.weights: Array = np.zeros((n_inputs + 1, n_outputs))
        # Only used to shuffle the presentation order when fit(shuffle=True).
        self.rng = np.random.default_rng(seed)
        self.step = activations.get("step")

    @property
    def kernel(self) -> Array:
        """Input weights (n_inputs, n_outputs)."""
        return self.weights[1:]

    @property
    def bias(self) -> Array:
        """Bias weights (n_outputs,): the weights on the constant input."""
        bias: Array = self.weights[0]
        return bias

    def _check(self, x: npt.ArrayLike, y: npt.ArrayLike | None = None) -> tuple[Array, Array]:
        """x with a leading column of ones (n, 1 + n_inputs), and y as (n, n_outputs) of 0/1."""
        xs = np.asarray(x, dtype=np.float64)
        if xs.ndim != 2 or xs.shape[1] != self.n_inputs or xs.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.n_inputs}) with n >= 1, got {xs.shape}")
        if not np.all(np.isfinite(xs)):
            raise ValueError("x contains NaN or inf; expected finite numbers")
        augmented = np.hstack([np.ones((xs.shape[0], 1)), xs])
        if y is None:
            return augmented, np.empty((0, self.n_outputs))
        ys = np.asarray(y, dtype=np.float64)
        if ys.ndim == 1 and self.n_outputs == 1:
            ys = ys.reshape(-1, 1)
        if ys.shape != (xs.shape[0], self.n_outputs):
            raise ValueError(f"y must have shape ({xs.shape[0]}, {self.n_outputs}), got {ys.shape}")
        if not np.all((ys == 0.0) | (ys == 1.0)):
            raise ValueError("y must hold 0/1 labels for step units")
        return augmented, ys

    def predict(self, x: npt.ArrayLike) -> Array:
        """step(w^T [1, x]) for each row: (n, n_outputs) of 0/1."""
        augmented, _ = self._check(x)
        return self.step.fn(augmented @ self.weights)

    def partial_fit(self, x: npt.ArrayLike, y: npt.ArrayLike) -> int:
        """One pass in the given order, updating after each instance; returns its error count."""
        augmented, ys = self._check(x, y)
        return self._pass(augmented, ys, np.arange(augmented.shape[0]))

    def _pass(self, augmented: Array, ys: Array, order: npt.NDArray[np.intp]) -> int:
        errors = 0
        for i in order:
            row = augmented[i]
            y_hat = self.step.fn(row @ self.weights)
            error = ys[i] - y_hat
            if np.any(error != 0.0):
                errors += 1
                self.weights += self.learning_rate * np.outer(row, error)
        return errors

    def fit(
        self, x: npt.ArrayLike, y: npt.ArrayLike, epochs: int, shuffle: bool = False
    ) -> list[int]:
        """Up to `epochs` passes; the errors of each, stopping after the first error-free one."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
        augmented, ys = self._check(x, y)
        errors_per_epoch: list[int] = []
        for _ in range(epochs):
            n = augmented.shape[0]
            order = self.rng.permutation(n) if shuffle else np.arange(n)
            errors_per_epoch.append(self._pass(augmented, ys, order))
            if errors_per_epoch[-1] == 0:
                break
        return errors_per_epoch
