"""Optimizers with Keras 3's names, defaults and update formulas, and the `OPTIMIZERS` registry.

`apply_gradients(params, grads)` updates each parameter array IN PLACE (the model and its
layers hold references to them). State is keyed by parameter name, e.g.
`state["layers.0.kernel"]["velocity"]`, created on first use; an optimizer never knows about
layers. `learning_rate` may be changed between steps and the state survives. `iterations`
counts steps (calls to apply_gradients), as Keras.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import ParamSpec, Spec, build, check_value

Array = npt.NDArray[np.float64]

KIND = "optimizer"


class Optimizer:
    """Base class: per-parameter state, the step counter and the in-place update loop."""

    name: str = "optimizer"

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.iterations = 0
        self.state: dict[str, dict[str, Array]] = {}
        # The delta added to each parameter by the last step, for the backprop trace.
        self.last_update: dict[str, Array] = {}

    @property
    def learning_rate(self) -> float:
        """The step size; settable between steps without touching the state."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._learning_rate = float(self._check("learning_rate", value))

    def _check(self, param: str, value: object) -> float | bool:
        return check_value(OPTIMIZERS[self.name], KIND, param, value)

    def build_state(self, w: Array) -> dict[str, Array]:
        """This optimizer's slots for one parameter (called on its first update)."""
        return {}

    def update_step(self, g: Array, slots: dict[str, Array]) -> Array:
        """Advance the slots with gradient g and return the delta to add to the parameter."""
        raise NotImplementedError

    def apply_gradients(self, params: Mapping[str, Array], grads: Mapping[str, Array]) -> None:
        """One step: params[key] += delta(grads[key]) in place for every key of grads."""
        for key, g in grads.items():
            w = params.get(key)
            if w is None:
                raise ValueError(
                    f"optimizer '{self.name}': gradient '{key}' has no parameter; expected one "
                    f"of: {', '.join(params)}"
                )
            if not isinstance(w, np.ndarray) or w.dtype != np.float64:
                raise ValueError(
                    f"optimizer '{self.name}': parameter '{key}' must be a float64 numpy array "
                    f"(updated in place), got {type(w).__name__}"
                )
            g = np.asarray(g, dtype=np.float64)
            if g.shape != w.shape:
                raise ValueError(
                    f"optimizer '{self.name}': gradient '{key}' has shape {g.shape} but the "
                    f"parameter has shape {w.shape}"
                )
            slots = self.state.get(key)
            if slots is None:
                slots = self.state[key] = self.build_state(w)
            delta = self.update_step(g, slots)
            w += delta
            self.last_update[key] = delta
        self.iterations += 1

    def trace(self) -> dict[str, dict[str, Array]]:
        """Per parameter: the last update ("update") and copies of its state after that step."""
        return {
            key: {"update": delta.copy(), **self.describe_state(self.state[key])}
            for key, delta in self.last_update.items()
        }

    def describe_state(self, slots: dict[str, Array]) -> dict[str, Array]:
        """Copies of the slots, plus derived quantities worth showing."""
        return {name: value.copy() for name, value in slots.items()}

    def get_config(self) -> dict[str, float | bool | str]:
        """Name and hyper-parameters: `get(name, **the_rest)` rebuilds an equal optimizer."""
        return {"name": self.name, "learning_rate": self.learning_rate}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Gradient descent, with optional (Nesterov) momentum, exactly as Keras 3.

    momentum = 0: w <- w - lr g.
    momentum > 0: velocity <- momentum velocity - lr g; w <- w + velocity
    (Nesterov: w <- w + momentum velocity - lr g). The lecture's m is -velocity.
    """

    name = "sgd"

    def __init__(
        self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False
    ) -> None:
        super().__init__(learning_rate)
        self.momentum = float(self._check("momentum", momentum))
        self.nesterov = bool(self._check("nesterov", nesterov))

    def build_state(self, w: Array) -> dict[str, Array]:
        return {"velocity": np.zeros_like(w)} if self.momentum != 0.0 else {}

    def update_step(self, g: Array, slots: dict[str, Array]) -> Array:
        lr = self.learning_rate
        if self.momentum == 0.0:
            # g * (-lr) is bit-for-bit -(g * lr), one numpy call fewer.
            result: Array = g * -lr
            return result
        velocity = slots["velocity"]
        velocity[...] = velocity * self.momentum - g * lr
        if self.nesterov:
            nesterov_delta: Array = velocity * self.momentum - g * lr
            return nesterov_delta
        return velocity.copy()

    def get_config(self) -> dict[str, float | bool | str]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """AdaGrad as Keras 3: accumulator <- accumulator + g^2; w <- w - lr g / sqrt(acc + eps)."""

    name = "adagrad"

    def __init__(
        self,
        learning_rate: float = 0.001,
        initial_accumulator_value: float = 0.1,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.initial_accumulator_value = float(
            self._check("initial_accumulator_value", initial_accumulator_value)
        )
        self.epsilon = float(self._check("epsilon", epsilon))

    def build_state(self, w: Array) -> dict[str, Array]:
        return {"accumulator": np.full_like(w, self.initial_accumulator_value)}

    def update_step(self, g: Array, slots: dict[str, Array]) -> Array:
        accumulator = slots["accumulator"]
        accumulator += np.square(g)
        result: Array = (-self.learning_rate * g) / np.sqrt(accumulator + self.epsilon)
        return result

    def describe_state(self, slots: dict[str, Array]) -> dict[str, Array]:
        # The per-weight step size the accumulator has left: lr / sqrt(acc + eps).
        effective = self.learning_rate / np.sqrt(slots["accumulator"] + self.epsilon)
        return {**super().describe_state(slots), "effective_learning_rate": effective}

    def get_config(self) -> dict[str, float | bool | str]:
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }


class RMSprop(Optimizer):
    """RMSprop as Keras 3 (uncentred).

    accumulator <- rho accumulator + (1 - rho) g^2 (Keras's "velocity");
    increment = lr g / sqrt(accumulator + eps);
    momentum = 0: w <- w - increment; else buffer <- momentum buffer + increment, w <- w - buffer.
    """

    name = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        rho: float = 0.9,
        momentum: float = 0.0,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.rho = float(self._check("rho", rho))
        self.momentum = float(self._check("momentum", momentum))
        self.epsilon = float(self._check("epsilon", epsilon))

    def build_state(self, w: Array) -> dict[str, Array]:
        slots = {"accumulator": np.zeros_like(w)}
        if self.momentum > 0.0:
            slots["momentum"] = np.zeros_like(w)
        return slots

    def update_step(self, g: Array, slots: dict[str, Array]) -> Array:
        accumulator = slots["accumulator"]
        accumulator[...] = self.rho * accumulator + (1.0 - self.rho) * np.square(g)
        increment = (self.learning_rate * g) / np.sqrt(accumulator + self.epsilon)
        if self.momentum > 0.0:
            buffer = slots["momentum"]
            buffer[...] = self.momentum * buffer + increment
            increment = buffer
        result: Array = -increment
        return result

    def describe_state(self, slots: dict[str, Array]) -> dict[str, Array]:
        effective = self.learning_rate / np.sqrt(slots["accumulator"] + self.epsilon)
        return {**super().describe_state(slots), "effective_learning_rate": effective}

    def get_config(self) -> dict[str, float | bool | str]:
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


class Adam(Optimizer):
    """Adam as Keras 3, with the bias correction folded into the step size ("epsilon hat").

    t = iterations + 1; m <- m + (g - m)(1 - beta_1); v <- v + (g^2 - v)(1 - beta_2);
    alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t); w <- w - alpha m / (sqrt(v) + eps).
    """

    name = "adam"

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
    ) -> None:
        super().__init__(learning_rate)
        self.beta_1 = float(self._check("beta_1", beta_1))
        self.beta_2 = float(self._check("beta_2", beta_2))
        self.epsilon = float(self._check("epsilon", epsilon))

    def build_state(self, w: Array) -> dict[str, Array]:
        return {"m": np.zeros_like(w), "v": np.zeros_like(w)}

    def update_step(self, g: Array, slots: dict[str, Array]) -> Array:
        t = self.iterations + 1
        alpha = self.learning_rate * math.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m, v = slots["m"], slots["v"]
        m += (g - m) * (1.0 - self.beta_1)
        v += (np.square(g) - v) * (1.0 - self.beta_2)
        result: Array = (m * -alpha) / (np.sqrt(v) + self.epsilon)
        return result

    def describe_state(self, slots: dict[str, Array]) -> dict[str, Array]:
        # After a step, iterations = t: the bias-corrected moments of the lecture's steps 3-4.
        t = self.iterations
        return {
            **super().describe_state(slots),
            "m_hat": slots["m"] / (1.0 - self.beta_1**t),
            "v_hat": slots["v"] / (1.0 - self.beta_2**t),
        }

    def get_config(self) -> dict[str, float | bool | str]:
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }


def _learning_rate(default: float) -> ParamSpec:
    return ParamSpec("learning_rate", default, 0.0, 10.0, "step size")


def _epsilon() -> ParamSpec:
    return ParamSpec("epsilon", 1e-7, 0.0, 1.0, "keeps the division finite", min_exclusive=True)


def _momentum(default: float) -> ParamSpec:
    return ParamSpec("momentum", default, 0.0, 1.0, "fraction of the previous step kept")


_NESTEROV = ParamSpec("nesterov", False, description="look-ahead (Nesterov) momentum")

# The registry entry type by the name docs/design.md gives it.
OptimizerSpec = Spec[Optimizer]

OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": Spec(
        "sgd",
        "Stochastic gradient descent: w <- w - lr g.",
        SGD,
        (_learning_rate(0.01), _momentum(0.0), _NESTEROV),
    ),
    "momentum": Spec(
        "momentum",
        "SGD with momentum: a velocity accumulates past gradients (SGD, momentum=0.9).",
        SGD,
        (_learning_rate(0.01), _momentum(0.9), _NESTEROV),
    ),
    "adagrad": Spec(
        "adagrad",
        "AdaGrad: per-weight rates shrink with the sum of squared gradients.",
        Adagrad,
        (
            _learning_rate(0.001),
            ParamSpec(
                "initial_accumulator_value", 0.1, 0.0, 10.0, "starting value of the accumulators"
            ),
            _epsilon(),
        ),
    ),
    "rmsprop": Spec(
        "rmsprop",
        "RMSProp: per-weight rates from a decaying average of squared gradients.",
        RMSprop,
        (
            _learning_rate(0.001),
            ParamSpec("rho", 0.9, 0.0, 1.0, "decay of the squared-gradient average"),
            _momentum(0.0),
            _epsilon(),
        ),
    ),
    "adam": Spec(
        "adam",
        "Adam: momentum and RMSProp combined, with bias correction.",
        Adam,
        (
            _learning_rate(0.001),
            ParamSpec("beta_1", 0.9, 0.0, 1.0, "decay of the gradient average", max_exclusive=True),
            ParamSpec(
                "beta_2",
                0.999,
                0.0,
                1.0,
                "decay of the squared-gradient average",
                max_exclusive=True,
            ),
            _epsilon(),
        ),
    ),
}


def get(identifier: str | Optimizer, **params: Any) -> Optimizer:
    """The optimizer named `identifier` built with `params` (or the instance itself).

    Unspecified parameters take the registry entry's defaults, so "momentum" is SGD(momentum=0.9).
    """
    if isinstance(identifier, Optimizer):
        if params:
            raise ValueError(f"optimizer {identifier!r} is already built; got params {params}")
        return identifier
    if isinstance(identifier, str) and identifier in OPTIMIZERS:
        params = {**OPTIMIZERS[identifier].defaults(), **params}
    return build(OPTIMIZERS, KIND, identifier, params)
