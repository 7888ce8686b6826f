"""Activation functions, each with its derivative beside it, and the `ACTIVATIONS` registry.

`fn(z)` is the activation, `grad(z, a)` the elementwise derivative da/dz (given z and a = fn(z),
whichever is cheaper), `backward(z, a, da)` the upstream gradient carried to z. Shapes: z, a and
da are (n, units); softmax works row-wise over the last axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import ParamSpec, Spec, build, check_value

Array = npt.NDArray[np.float64]

KIND = "activation"


class ActivationFunction:
    """Base class: an elementwise function and its derivative."""

    name: str = "activation"

    def fn(self, z: Array) -> Array:
        """The activation a = f(z)."""
        raise NotImplementedError

    def grad(self, z: Array, a: Array) -> Array:
        """Elementwise derivative da/dz."""
        raise NotImplementedError

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        """dL/dz from dL/da: da * f'(z) for elementwise functions."""
        return da * self.grad(z, a)

    def get_config(self) -> dict[str, float]:
        """The parameters that rebuild this activation with `get(name, **config)`."""
        return {}

    def __call__(self, z: Array) -> Array:
        return self.fn(z)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Step(ActivationFunction):
    """The LTU's Heaviside step: 1 where z >= 0, else 0 (the lecture's step(z))."""

    name = "step"

    def fn(self, z: Array) -> Array:
        return (z >= 0.0).astype(np.float64)

    def grad(self, z: Array, a: Array) -> Array:
        # Its derivative is 0 almost everywhere: gradient descent through it would silently
        # learn nothing, so refuse loudly instead.
        raise ValueError(
            "the step function has no useful gradient (it is 0 everywhere except at z = 0), so "
            "backpropagation through it cannot learn; train step units with the perceptron rule "
            "(Perceptron) or use sigmoid, tanh or relu"
        )


class Linear(ActivationFunction):
    """Identity: a = z."""

    name = "linear"

    def fn(self, z: Array) -> Array:
        # A copy, so a caller writing into `a` in place never changes the cached z.
        return z.copy()

    def grad(self, z: Array, a: Array) -> Array:
        return np.ones_like(z)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        return da.copy()


class Sigmoid(ActivationFunction):
    """Logistic function 1 / (1 + e^-z), stable for any |z|: a' = a (1 - a)."""

    name = "sigmoid"

    def fn(self, z: Array) -> Array:
        # exp(-softplus(-z)) never overflows and keeps relative precision for very negative z.
        result: Array = np.exp(-np.logaddexp(0.0, -z))
        return result

    def grad(self, z: Array, a: Array) -> Array:
        return a * (1.0 - a)


class Tanh(ActivationFunction):
    """Hyperbolic tangent: a' = 1 - a^2."""

    name = "tanh"

    def fn(self, z: Array) -> Array:
        return np.tanh(z)

    def grad(self, z: Array, a: Array) -> Array:
        return 1.0 - a * a


class ReLU(ActivationFunction):
    """max(0, z); derivative 1 for z > 0, else 0 (0 at z = 0, as TensorFlow)."""

    name = "relu"

    def fn(self, z: Array) -> Array:
        return np.maximum(z, 0.0)

    def grad(self, z: Array, a: Array) -> Array:
        return (z > 0.0).astype(np.float64)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        return np.where(z > 0.0, da, 0.0)


class LeakyReLU(ActivationFunction):
    """max(alpha z, z) with 0 <= alpha <= 1 (the lecture's leaky ReLU, alpha = 0.01)."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(check_value(ACTIVATIONS[self.name], KIND, "alpha", alpha))

    def fn(self, z: Array) -> Array:
        # Equal to the where() form because alpha <= 1, and one numpy call cheaper.
        return np.maximum(z, self.alpha * z)

    def grad(self, z: Array, a: Array) -> Array:
        return np.where(z > 0.0, 1.0, self.alpha)

    def get_config(self) -> dict[str, float]:
        return {"alpha": self.alpha}


class ELU(ActivationFunction):
    """z for z >= 0, alpha (e^z - 1) below (Keras and the lecture); derivative a + alpha below."""

    name = "elu"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(check_value(ACTIVATIONS[self.name], KIND, "alpha", alpha))

    def fn(self, z: Array) -> Array:
        # min(z, 0) keeps expm1 from overflowing on the branch np.where discards.
        return np.where(z >= 0.0, z, self.alpha * np.expm1(np.minimum(z, 0.0)))

    def grad(self, z: Array, a: Array) -> Array:
        return np.where(z >= 0.0, 1.0, a + self.alpha)

    def get_config(self) -> dict[str, float]:
        return {"alpha": self.alpha}


class Softmax(ActivationFunction):
    """Row-wise softmax over the last axis, shifted by the row maximum so it never overflows."""

    name = "softmax"

    def fn(self, z: Array) -> Array:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        result: Array = e / e.sum(axis=-1, keepdims=True)
        return result

    def grad(self, z: Array, a: Array) -> Array:
        """Only the Jacobian's diagonal a (1 - a); `backward` applies the full Jacobian."""
        return a * (1.0 - a)

    def backward(self, z: Array, a: Array, da: Array) -> Array:
        """dz_j = a_j (da_j - sum_k da_k a_k): the Jacobian diag(a) - a a^T applied per row."""
        result: Array = a * (da - (da * a).sum(axis=-1, keepdims=True))
        return result


# The registry entry type by the name docs/design.md gives it.
ActivationSpec = Spec[ActivationFunction]

ACTIVATIONS: dict[str, ActivationSpec] = {
    "step": Spec(
        "step", "Heaviside step of the LTU and perceptron; has no gradient to train with.", Step
    ),
    "linear": Spec("linear", "Identity a = z; the regression output unit.", Linear),
    "sigmoid": Spec("sigmoid", "Logistic 1/(1+e^-z) in (0, 1); saturates at both ends.", Sigmoid),
    "tanh": Spec("tanh", "Hyperbolic tangent in (-1, 1), zero-centred; saturates.", Tanh),
    "relu": Spec("relu", "max(0, z): cheap and non-saturating for z > 0; units can die.", ReLU),
    "leaky_relu": Spec(
        "leaky_relu",
        "max(alpha z, z): a small slope for z < 0 keeps units from dying.",
        LeakyReLU,
        (ParamSpec("alpha", 0.01, 0.0, 1.0, "slope for z < 0"),),
    ),
    "elu": Spec(
        "elu",
        "z for z >= 0, alpha (e^z - 1) below: smooth, negative outputs push means to 0.",
        ELU,
        (ParamSpec("alpha", 1.0, 0.0, 10.0, "value approached as z -> -infinity is -alpha"),),
    ),
    "rrelu": Spec(
        "rrelu",
        "Randomized leaky ReLU: slope drawn in [lower, upper] while training, the mean at test.",
        None,
        (
            ParamSpec("lower", 1.0 / 8.0, 0.0, 1.0, "smallest random slope for z < 0"),
            ParamSpec("upper", 1.0 / 3.0, 0.0, 1.0, "largest random slope for z < 0"),
        ),
        stateful=True,
    ),
    "prelu": Spec(
        "prelu",
        "Parametric leaky ReLU: the slope for z < 0 is learned per unit like a weight.",
        None,
        (ParamSpec("alpha_initializer", 0.25, 0.0, 1.0, "initial slope for z < 0"),),
        stateful=True,
    ),
    "softmax": Spec(
        "softmax", "Row-wise e^z / sum e^z: class probabilities of a multi-class output.", Softmax
    ),
}


def get(identifier: str | ActivationFunction | None, **params: Any) -> ActivationFunction:
    """The activation named `identifier` built with `params`; None gives linear (as Keras)."""
    if isinstance(identifier, ActivationFunction):
        if params:
            raise ValueError(f"activation {identifier!r} is already built; got params {params}")
        return identifier
    if identifier is None:
        identifier = "linear"
    return build(ACTIVATIONS, KIND, identifier, params)
