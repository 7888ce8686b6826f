"""Leaky ReLUs with state, as layers: PReLU (learned slope) and RReLU (random slope)."""

from __future__ import annotations

import numpy as np

from app.engine import activations, initializers
from app.engine.layers_base import Array, Generator, Layer
from app.engine.params import check_value


def _leaky_forward(z: Array, slope: Array) -> Array:
    """max-style leaky map with a per-unit slope: z for z >= 0, slope * z below."""
    result: Array = np.where(z >= 0.0, z, slope * z)
    return result


class PReLU(Layer):
    """Parametric leaky ReLU: A = Z for Z >= 0, alpha * Z below; alpha learned per unit."""

    default_name = "p_re_lu"

    def __init__(
        self,
        alpha_initializer: float | str | initializers.Initializer = 0.25,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(alpha_initializer, int | float):
            spec = activations.ACTIVATIONS["prelu"]
            value = check_value(spec, "activation", "alpha_initializer", alpha_initializer)
            self.alpha_initializer = initializers.get("constant", value=float(value))
        else:
            self.alpha_initializer = initializers.get(alpha_initializer)

    def build(self, n_in: int, rng: Generator) -> int:
        """One slope per unit, alpha: (n_in,)."""
        self.n_in = self.n_out = n_in
        self.params["alpha"] = self.alpha_initializer((n_in,), rng)
        self.built = True
        return n_in

    def forward(self, x: Array, training: bool) -> Array:
        """Z -> max-style leaky map with the learned slope."""
        self.z, self.a = x, _leaky_forward(x, self.params["alpha"])
        return self.a

    def backward(self, dy: Array) -> Array:
        """dZ = dA where Z >= 0, alpha * dA below; d alpha = sum over batch of dA * min(Z, 0)."""
        assert self.z is not None
        negative_part = np.minimum(self.z, 0.0)
        self.grads["alpha"] = (dy * negative_part).sum(axis=0)
        self.delta = np.where(self.z >= 0.0, dy, self.params["alpha"] * dy)
        return self.delta

    def describe(self) -> str:
        """PReLU."""
        return "PReLU"


class RReLU(Layer):
    """Randomized leaky ReLU: slope ~ U[lower, upper] per unit and step in training, mean after."""

    default_name = "r_re_lu"

    def __init__(self, lower: float = 1 / 8, upper: float = 1 / 3, name: str | None = None) -> None:
        super().__init__(name)
        spec = activations.ACTIVATIONS["rrelu"]
        self.lower = float(check_value(spec, "activation", "lower", lower))
        self.upper = float(check_value(spec, "activation", "upper", upper))
        if self.lower > self.upper:
            raise ValueError(f"RReLU needs lower <= upper, got lower={lower!r}, upper={upper!r}")
        self.slope: Array | None = None

    def forward(self, x: Array, training: bool) -> Array:
        """Training draws a fresh slope per unit; inference uses (lower + upper) / 2."""
        if training:
            if self.noise_rng is None:
                raise ValueError("RReLU needs a generator in training: add it to a Sequential")
            slope = self.noise_rng.uniform(self.lower, self.upper, size=(x.shape[1],))
        else:
            slope = np.full(x.shape[1], (self.lower + self.upper) / 2.0)
        self.slope = slope
        self.z, self.a = x, _leaky_forward(x, slope)
        return self.a

    def backward(self, dy: Array) -> Array:
        """dZ = dA where Z >= 0, slope * dA below (the slope of the forward)."""
        assert self.z is not None and self.slope is not None
        self.delta = np.where(self.z >= 0.0, dy, self.slope * dy)
        return self.delta

    def describe(self) -> str:
        """RReLU(lower, upper)."""
        return f"RReLU({self.lower:.4g}, {self.upper:.4g})"
