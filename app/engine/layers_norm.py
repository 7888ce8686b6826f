"""Batch normalization (Ioffe & Szegedy 2015) with Keras's parameters and moving averages."""

from __future__ import annotations

import numpy as np

from app.engine.layers_base import Array, Generator, Layer


class BatchNormalization(Layer):
    """Normalize each unit over the batch, then scale and shift: A = gamma * X_hat + beta.

    Training: X_hat = (X - mu_B) / sqrt(var_B + eps) with the batch mean and the biased batch
    variance, and moving = momentum * moving + (1 - momentum) * batch. Inference: the moving
    averages replace the batch statistics. `z` is X_hat, `a` the output.
    """

    default_name = "batch_normalization"

    def __init__(
        self, momentum: float = 0.99, epsilon: float = 1e-3, name: str | None = None
    ) -> None:
        super().__init__(name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        if not epsilon > 0.0:
            raise ValueError(f"BatchNormalization epsilon must be > 0, got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.inv_std: Array | None = None
        self.training = False

    def build(self, n_in: int, rng: Generator) -> int:
        """gamma = 1, beta = 0, moving mean 0, moving variance 1, each (n_in,)."""
        self.n_in = self.n_out = n_in
        self.params["gamma"] = np.ones(n_in)
        self.params["beta"] = np.zeros(n_in)
        self.state["moving_mean"] = np.zeros(n_in)
        self.state["moving_variance"] = np.ones(n_in)
        self.built = True
        return n_in

    def forward(self, x: Array, training: bool) -> Array:
        """X: (n, k) -> gamma * X_hat + beta; training also updates the moving averages."""
        if training:
            mean = x.mean(axis=0)
            variance = x.var(axis=0)
            keep = self.momentum
            self.state["moving_mean"][...] = keep * self.state["moving_mean"] + (1 - keep) * mean
            self.state["moving_variance"][...] = (
                keep * self.state["moving_variance"] + (1 - keep) * variance
            )
        else:
            mean, variance = self.state["moving_mean"], self.state["moving_variance"]
        self.training = training
        self.inv_std = 1.0 / np.sqrt(variance + self.epsilon)
        self.z = (x - mean) * self.inv_std
        self.a = self.params["gamma"] * self.z + self.params["beta"]
        return self.a

    def backward(self, dy: Array) -> Array:
        """dX through the batch statistics in training (they depend on X), affine otherwise.

        d gamma = sum(dY * X_hat), d beta = sum(dY), dX_hat = dY * gamma;
        training: dX = inv_std / n * (n dX_hat - sum(dX_hat) - X_hat sum(dX_hat X_hat)).
        """
        assert self.z is not None and self.inv_std is not None
        x_hat = self.z
        self.grads["gamma"] = (dy * x_hat).sum(axis=0)
        self.grads["beta"] = dy.sum(axis=0)
        d_x_hat = dy * self.params["gamma"]
        self.delta = d_x_hat
        if not self.training:
            result: Array = d_x_hat * self.inv_std
            return result
        n = dy.shape[0]
        centered = n * d_x_hat - d_x_hat.sum(axis=0) - x_hat * (d_x_hat * x_hat).sum(axis=0)
        result = self.inv_std / n * centered
        return result

    def weight_slots(self) -> list[tuple[dict[str, Array], str]]:
        """Keras order: gamma, beta, moving_mean, moving_variance."""
        return [
            (self.params, "gamma"),
            (self.params, "beta"),
            (self.state, "moving_mean"),
            (self.state, "moving_variance"),
        ]

    def describe(self) -> str:
        """BatchNormalization(momentum, epsilon)."""
        return f"BatchNormalization({self.momentum:g}, {self.epsilon:g})"
