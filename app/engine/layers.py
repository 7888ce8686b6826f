"""Layers of the Keras-style model: each forward sits right above its backward.

The base class and Input live in layers_base.py, PReLU and RReLU in layers_leaky.py,
BatchNormalization in layers_norm.py; all are importable from here.
"""

from __future__ import annotations

import numpy as np

from app.engine import activations, constraints, initializers, regularizers
from app.engine.layers_base import Array, Generator, Input, Layer
from app.engine.layers_leaky import PReLU, RReLU
from app.engine.layers_norm import BatchNormalization

__all__ = [
    "Activation",
    "Array",
    "BatchNormalization",
    "Dense",
    "Dropout",
    "Generator",
    "Input",
    "Layer",
    "PReLU",
    "RReLU",
]

# Activations that carry state (a generator or a learned slope) are layers, not functions.
STATEFUL_ACTIVATIONS = ("prelu", "rrelu")


def _activation_function(
    activation: str | activations.ActivationFunction | None,
) -> activations.ActivationFunction:
    """Resolve a stateless activation name or instance; None means linear."""
    if activation is None:
        return activations.get("linear")
    if isinstance(activation, str) and activation in STATEFUL_ACTIVATIONS:
        raise ValueError(
            f"activation {activation!r} has state; use Dense(activation={activation!r}) "
            f"or the {activation.upper()} layer"
        )
    return activations.get(activation)


class Dense(Layer):
    """Fully connected layer: Z = X @ W + b, A = activation(Z); W: (n_in, units)."""

    default_name = "dense"

    def __init__(
        self,
        units: int,
        activation: str | activations.ActivationFunction | None = None,
        use_bias: bool = True,
        kernel_initializer: str | initializers.Initializer = "glorot_uniform",
        bias_initializer: str | initializers.Initializer = "zeros",
        kernel_regularizer: str | regularizers.Regularizer | None = None,
        bias_regularizer: str | regularizers.Regularizer | None = None,
        kernel_constraint: str | constraints.Constraint | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if isinstance(units, bool) or not isinstance(units, int | np.integer) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self.use_bias = use_bias
        # prelu/rrelu need a learned slope or a generator: a layer inside the Dense runs them.
        self.activation_layer: PReLU | RReLU | None = None
        self.activation: activations.ActivationFunction | None = None
        if activation == "prelu":
            self.activation_layer = PReLU()
        elif activation == "rrelu":
            self.activation_layer = RReLU()
        else:
            self.activation = _activation_function(activation)
        self.activation_name = str(activation) if self.activation is None else self.activation.name
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = (
            None if kernel_regularizer is None else regularizers.get(kernel_regularizer)
        )
        self.bias_regularizer = (
            None if bias_regularizer is None else regularizers.get(bias_regularizer)
        )
        self.kernel_constraint = (
            None if kernel_constraint is None else constraints.get(kernel_constraint)
        )
        self.x: Array | None = None

    def build(self, n_in: int, rng: Generator) -> int:
        """Draw the kernel (n_in, units) and bias (units,) from their initializers."""
        self.n_in, self.n_out = n_in, self.units
        self.params["kernel"] = self.kernel_initializer((n_in, self.units), rng)
        if self.use_bias:
            self.params["bias"] = self.bias_initializer((self.units,), rng)
        if self.activation_layer is not None:
            self.activation_layer.build(self.units, rng)
            # Shared array: the optimizer updates it in place, the inner layer reads it.
            self.params.update(self.activation_layer.params)
        self.built = True
        return self.n_out

    def bind_noise(self, rng: Generator) -> None:
        """Hand the generator down to an inner RReLU too."""
        self.noise_rng = rng
        if self.activation_layer is not None:
            self.activation_layer.bind_noise(rng)

    def forward(self, x: Array, training: bool) -> Array:
        """X: (n, n_in) -> A: (n, units)."""
        z = x @ self.params["kernel"]
        if self.use_bias:
            z += self.params["bias"]
        if self.activation is not None:
            a = self.activation.fn(z)
        else:
            assert self.activation_layer is not None
            a = self.activation_layer.forward(z, training)
        self.x, self.z, self.a = x, z, a
        return a

    def backward(self, dy: Array) -> Array:
        """dA: (n, units) -> dX: (n, n_in), through the activation's derivative."""
        assert self.z is not None and self.a is not None
        if self.activation is not None:
            dz = self.activation.backward(self.z, self.a, dy)
        else:
            assert self.activation_layer is not None
            dz = self.activation_layer.backward(dy)
            self.grads.update(self.activation_layer.grads)
        return self.backward_logits(dz)

    def backward_logits(self, dz: Array) -> Array:
        """dZ: (n, units) -> dX; dW = X.T @ dZ (+ penalty grad), db = sum of dZ over the batch."""
        assert self.x is not None
        kernel = self.params["kernel"]
        self.delta = dz
        d_kernel = self.x.T @ dz
        if self.kernel_regularizer is not None:
            d_kernel += self.kernel_regularizer.grad(kernel)
        self.grads["kernel"] = d_kernel
        if self.use_bias:
            d_bias = dz.sum(axis=0)
            if self.bias_regularizer is not None:
                d_bias += self.bias_regularizer.grad(self.params["bias"])
            self.grads["bias"] = d_bias
        result: Array = dz @ kernel.T
        return result

    def penalty(self) -> float:
        """Kernel penalty, plus the bias penalty only when a bias regularizer was given."""
        total = 0.0
        if self.kernel_regularizer is not None:
            total += float(self.kernel_regularizer(self.params["kernel"]))
        if self.bias_regularizer is not None and self.use_bias:
            total += float(self.bias_regularizer(self.params["bias"]))
        return total

    def apply_constraints(self) -> None:
        """Clip the kernel in place (max-norm: each unit's incoming weights)."""
        if self.kernel_constraint is not None:
            kernel = self.params["kernel"]
            kernel[...] = self.kernel_constraint(kernel)

    def uses_step(self) -> bool:
        """True for a step activation."""
        return self.activation is not None and self.activation.name == "step"

    def describe(self) -> str:
        """Dense(units, activation)."""
        return f"Dense({self.units}, {self.activation_name})"


class Activation(Layer):
    """A stateless activation as its own layer: A = f(Z), Z the layer's input."""

    default_name = "activation"

    def __init__(
        self, activation: str | activations.ActivationFunction, name: str | None = None
    ) -> None:
        super().__init__(name)
        self.activation = _activation_function(activation)

    def forward(self, x: Array, training: bool) -> Array:
        """Z: (n, k) -> f(Z)."""
        self.z, self.a = x, self.activation.fn(x)
        return self.a

    def backward(self, dy: Array) -> Array:
        """dA -> dZ = f'(Z) applied to dA (softmax: its Jacobian)."""
        assert self.z is not None and self.a is not None
        return self.backward_logits(self.activation.backward(self.z, self.a, dy))

    def backward_logits(self, dz: Array) -> Array:
        """dZ given directly (fused sigmoid/softmax with cross-entropy): passes through."""
        self.delta = dz
        return dz

    def uses_step(self) -> bool:
        """True for the step function."""
        return self.activation.name == "step"

    def describe(self) -> str:
        """Activation(name)."""
        return f"Activation({self.activation.name})"


class Dropout(Layer):
    """Inverted dropout: in training keep each unit with p = 1 - rate and scale by 1/p."""

    default_name = "dropout"

    def __init__(self, rate: float, name: str | None = None) -> None:
        super().__init__(name)
        if not (isinstance(rate, int | float) and 0.0 <= rate < 1.0):
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.mask: Array | None = None

    def forward(self, x: Array, training: bool) -> Array:
        """Training: X * mask / (1 - rate); inference: X unchanged."""
        if not training or self.rate == 0.0:
            self.mask = None
            self.z = self.a = x
            return x
        if self.noise_rng is None:
            raise ValueError("Dropout needs a generator in training: add it to a Sequential")
        keep = self.noise_rng.random(x.shape) >= self.rate
        self.mask = keep / (1.0 - self.rate)
        self.z, self.a = x, x * self.mask
        return self.a

    def backward(self, dy: Array) -> Array:
        """dX = dY * mask (the same mask as the forward)."""
        self.delta = dy if self.mask is None else dy * self.mask
        return self.delta

    def describe(self) -> str:
        """Dropout(rate)."""
        return f"Dropout({self.rate:g})"
