"""Weight penalties (Keras's l1, l2, l1_l2), each with its gradient beside it; `REGULARIZERS`.

`reg(w)` is the penalty added to the loss, `reg.grad(w)` its gradient added to dL/dw.
Keras's forms, no 1/2 and no 1/n: l1 * sum|w| and l2 * sum w^2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import ParamSpec, Spec, build, check_value

Array = npt.NDArray[np.float64]

KIND = "regularizer"

# TensorFlow Playground's largest regularization rate.
RATE_LIMIT = 10.0


class Regularizer:
    """Base class: a penalty on a weight array and its gradient."""

    name: str = "regularizer"

    def __call__(self, w: Array) -> float:
        """The penalty."""
        raise NotImplementedError

    def grad(self, w: Array) -> Array:
        """d penalty / dw, shape of w."""
        raise NotImplementedError

    def get_config(self) -> dict[str, float]:
        """The rates that rebuild this regularizer with `get(name, **config)`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L1(Regularizer):
    """l1 * sum|w|; gradient l1 * sign(w) (0 at w = 0)."""

    name = "l1"

    def __init__(self, l1: float = 0.01) -> None:
        self.l1 = float(check_value(REGULARIZERS[self.name], KIND, "l1", l1))

    def __call__(self, w: Array) -> float:
        return self.l1 * float(np.abs(w).sum())

    def grad(self, w: Array) -> Array:
        result: Array = self.l1 * np.sign(w)
        return result

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1}


class L2(Regularizer):
    """l2 * sum w^2; gradient 2 l2 w."""

    name = "l2"

    def __init__(self, l2: float = 0.01) -> None:
        self.l2 = float(check_value(REGULARIZERS[self.name], KIND, "l2", l2))

    def __call__(self, w: Array) -> float:
        return self.l2 * float(np.square(w).sum())

    def grad(self, w: Array) -> Array:
        result: Array = (2.0 * self.l2) * w
        return result

    def get_config(self) -> dict[str, float]:
        return {"l2": self.l2}


class L1L2(Regularizer):
    """l1 * sum|w| + l2 * sum w^2; gradient l1 sign(w) + 2 l2 w."""

    name = "l1_l2"

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        spec = REGULARIZERS[self.name]
        self.l1 = float(check_value(spec, KIND, "l1", l1))
        self.l2 = float(check_value(spec, KIND, "l2", l2))

    def __call__(self, w: Array) -> float:
        return self.l1 * float(np.abs(w).sum()) + self.l2 * float(np.square(w).sum())

    def grad(self, w: Array) -> Array:
        result: Array = self.l1 * np.sign(w) + (2.0 * self.l2) * w
        return result

    def get_config(self) -> dict[str, float]:
        return {"l1": self.l1, "l2": self.l2}


# Keras's lower-case aliases.
l1 = L1
l2 = L2
l1_l2 = L1L2


def _rate(name: str, default: float) -> ParamSpec:
    return ParamSpec(name, default, 0.0, RATE_LIMIT, f"{name.upper()} penalty rate")


# The registry entry type by the name docs/design.md gives it.
RegularizerSpec = Spec[Regularizer]

REGULARIZERS: dict[str, RegularizerSpec] = {
    "l1": Spec(
        "l1",
        "L1 penalty l1*sum|w|: drives weights to exactly 0 (sparse).",
        L1,
        (_rate("l1", 0.01),),
    ),
    "l2": Spec(
        "l2",
        "L2 penalty l2*sum w^2: shrinks weights smoothly (weight decay).",
        L2,
        (_rate("l2", 0.01),),
    ),
    "l1_l2": Spec(
        "l1_l2",
        "Both penalties: l1*sum|w| + l2*sum w^2.",
        L1L2,
        (_rate("l1", 0.0), _rate("l2", 0.0)),
    ),
}


def get(identifier: str | Regularizer, **params: Any) -> Regularizer:
    """The regularizer named `identifier` built with `params` (or the instance itself)."""
    if isinstance(identifier, Regularizer):
        if params:
            raise ValueError(f"regularizer {identifier!r} is already built; got params {params}")
        return identifier
    return build(REGULARIZERS, KIND, identifier, params)
