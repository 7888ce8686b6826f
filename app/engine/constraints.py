"""Weight constraints applied after every update (Keras's max_norm), and `CONSTRAINTS`."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import ParamSpec, Spec, build, check_value

Array = npt.NDArray[np.float64]

KIND = "constraint"


class Constraint:
    """Base class: projects a weight array back onto the allowed set."""

    name: str = "constraint"

    def __call__(self, w: Array) -> Array:
        """The constrained weights (a new array)."""
        raise NotImplementedError

    def get_config(self) -> dict[str, float]:
        """The parameters that rebuild this constraint with `get(name, **config)`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class MaxNorm(Constraint):
    """Clip each unit's incoming weight vector to L2 norm <= max_value (the lecture's max-norm).

    For a (n_in, n_out) kernel and axis=0, column j holds unit j's incoming weights:
    w_j <- w_j * r / ||w_j|| where ||w_j|| > r; columns within the norm are left exactly as
    they are (Keras's `w * clip(norm, 0, r) / (eps + norm)` nudges them by ~1e-7).
    """

    name = "max_norm"

    def __init__(self, max_value: float = 2.0, axis: int = 0) -> None:
        spec = CONSTRAINTS[self.name]
        self.max_value = float(check_value(spec, KIND, "max_value", max_value))
        self.axis = int(check_value(spec, KIND, "axis", axis))

    def __call__(self, w: Array) -> Array:
        if not -w.ndim <= self.axis < w.ndim:
            raise ValueError(
                f"constraint 'max_norm': axis={self.axis} does not exist for weights of shape "
                f"{w.shape}"
            )
        norms = np.sqrt(np.square(w).sum(axis=self.axis, keepdims=True))
        # Divide only where clipping happens, so a zero column never divides by zero.
        scale = np.where(
            norms > self.max_value, self.max_value / np.maximum(norms, self.max_value), 1.0
        )
        result: Array = w * scale
        return result

    def get_config(self) -> dict[str, float]:
        return {"max_value": self.max_value, "axis": self.axis}


# Keras's lower-case alias.
max_norm = MaxNorm


# The registry entry type by the name docs/design.md gives it.
ConstraintSpec = Spec[Constraint]

CONSTRAINTS: dict[str, ConstraintSpec] = {
    "max_norm": Spec(
        "max_norm",
        "Max-norm: each unit's incoming weight vector is clipped to norm <= max_value.",
        MaxNorm,
        (
            ParamSpec("max_value", 2.0, 0.0, 1e3, "largest allowed norm r", min_exclusive=True),
            ParamSpec("axis", 0, -2, 1, "axis of the norm: 0 = each unit's incoming weights"),
        ),
    ),
}


def get(identifier: str | Constraint, **params: Any) -> Constraint:
    """The constraint named `identifier` built with `params` (or the instance itself)."""
    if isinstance(identifier, Constraint):
        if params:
            raise ValueError(f"constraint {identifier!r} is already built; got params {params}")
        return identifier
    return build(CONSTRAINTS, KIND, identifier, params)
