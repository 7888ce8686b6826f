"""Weight initializers with Keras's names, defaults and formulas, and the `INITIALIZERS` registry.

Each is called as `init(shape, rng)` with the owner's `np.random.Generator`, so the same seed
gives the same arrays. Fans follow Keras: for a (n_in, n_out) kernel fan_in = n_in and
fan_out = n_out; a 1-D shape (n,) has fan_in = fan_out = n.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from app.engine.params import ParamSpec, Spec, build, check_value

Array = npt.NDArray[np.float64]

KIND = "initializer"

# Standard deviation of a unit normal truncated to [-2, 2]: Keras divides by it so that a
# truncated draw still has the variance the scheme asks for.
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight shape, as Keras's compute_fans."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def truncated_normal(
    shape: tuple[int, ...], rng: np.random.Generator, mean: float, stddev: float
) -> Array:
    """Normal draws, each redrawn until it lies within 2 stddev of the mean (as TensorFlow)."""
    unit = rng.standard_normal(shape)
    outside = np.abs(unit) > 2.0
    while outside.any():
        unit[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(unit) > 2.0
    result: Array = mean + stddev * unit
    return result


def _check_call(name: str, shape: object, rng: object) -> tuple[int, ...]:
    """Validate the call's arguments; return the shape as a tuple of ints."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"initializer '{name}': rng must be a numpy.random.Generator, got {type(rng).__name__}"
        )
    dims = (shape,) if isinstance(shape, int) else shape
    if not isinstance(dims, tuple | list) or not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in dims
    ):
        raise ValueError(
            f"initializer '{name}': shape {shape!r} must be a tuple of non-negative integers"
        )
    return tuple(int(d) for d in dims)


class Initializer:
    """Base class: draws an array of a given shape from a Generator."""

    name: str = "initializer"

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        """A new float64 array of `shape`."""
        return self.sample(_check_call(self.name, shape, rng), rng)

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        """The draw itself, on validated arguments."""
        raise NotImplementedError

    def get_config(self) -> dict[str, float]:
        """The parameters that rebuild this initializer with `get(name, **config)`."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros (the symmetric start the lecture warns about, for weights)."""

    name = "zeros"

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    name = "ones"

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        return np.ones(shape)


class Constant(Initializer):
    """Every entry equal to `value`."""

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        self.value = float(check_value(INITIALIZERS[self.name], KIND, "value", value))

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        return np.full(shape, self.value)

    def get_config(self) -> dict[str, float]:
        return {"value": self.value}


class RandomUniform(Initializer):
    """Uniform on [minval, maxval)."""

    name = "random_uniform"

    def __init__(self, minval: float = -0.05, maxval: float = 0.05) -> None:
        spec = INITIALIZERS[self.name]
        self.minval = float(check_value(spec, KIND, "minval", minval))
        self.maxval = float(check_value(spec, KIND, "maxval", maxval))
        if self.minval > self.maxval:
            raise ValueError(
                f"initializer 'random_uniform': minval={self.minval!r} is above "
                f"maxval={self.maxval!r}; expected minval <= maxval"
            )

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self) -> dict[str, float]:
        return {"minval": self.minval, "maxval": self.maxval}


class RandomNormal(Initializer):
    """Normal with the given mean and standard deviation (not truncated, as Keras)."""

    name = "random_normal"

    def __init__(self, mean: float = 0.0, stddev: float = 0.05) -> None:
        spec = INITIALIZERS[self.name]
        self.mean = float(check_value(spec, KIND, "mean", mean))
        self.stddev = float(check_value(spec, KIND, "stddev", stddev))

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self) -> dict[str, float]:
        return {"mean": self.mean, "stddev": self.stddev}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance scale / fan, uniform or truncated normal.

    fan is fan_in, fan_out or their mean (`mode`); uniform draws on [-limit, limit] with
    limit = sqrt(3 scale / fan); truncated normal with stddev sqrt(scale / fan) / 0.8796...
    """

    def __init__(self, scale: float, mode: str, distribution: str) -> None:
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def variance(self, shape: tuple[int, ...]) -> float:
        """The target variance scale / fan for this shape."""
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        return self.scale / max(1.0, fan[self.mode])

    def sample(self, shape: tuple[int, ...], rng: np.random.Generator) -> Array:
        variance = self.variance(shape)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        return truncated_normal(shape, rng, 0.0, math.sqrt(variance) / TRUNCATED_NORMAL_STDDEV)


class GlorotUniform(VarianceScaling):
    """Glorot (Xavier) uniform: limit sqrt(6 / (fan_in + fan_out))."""

    name = "glorot_uniform"

    def __init__(self) -> None:
        super().__init__(1.0, "fan_avg", "uniform")


class GlorotNormal(VarianceScaling):
    """Glorot (Xavier) normal: variance 2 / (fan_in + fan_out), truncated at 2 stddev."""

    name = "glorot_normal"

    def __init__(self) -> None:
        super().__init__(1.0, "fan_avg", "truncated_normal")


class HeUniform(VarianceScaling):
    """He uniform: limit sqrt(6 / fan_in), for ReLU units."""

    name = "he_uniform"

    def __init__(self) -> None:
        super().__init__(2.0, "fan_in", "uniform")


class HeNormal(VarianceScaling):
    """He normal: variance 2 / fan_in, truncated at 2 stddev, for ReLU units."""

    name = "he_normal"

    def __init__(self) -> None:
        super().__init__(2.0, "fan_in", "truncated_normal")


class LecunNormal(VarianceScaling):
    """LeCun normal: variance 1 / fan_in, truncated at 2 stddev."""

    name = "lecun_normal"

    def __init__(self) -> None:
        super().__init__(1.0, "fan_in", "truncated_normal")


VALUE_LIMIT = 1e3  # any initial value beyond this would only saturate every unit

# The registry entry type by the name docs/design.md gives it.
InitializerSpec = Spec[Initializer]

INITIALIZERS: dict[str, InitializerSpec] = {
    "zeros": Spec("zeros", "All zeros: hidden units stay identical (no symmetry breaking).", Zeros),
    "ones": Spec("ones", "All ones.", Ones),
    "constant": Spec(
        "constant",
        "Every entry equal to value.",
        Constant,
        (ParamSpec("value", 0.0, -VALUE_LIMIT, VALUE_LIMIT, "the constant"),),
    ),
    "random_uniform": Spec(
        "random_uniform",
        "Uniform on [minval, maxval).",
        RandomUniform,
        (
            ParamSpec("minval", -0.05, -VALUE_LIMIT, VALUE_LIMIT, "lower bound"),
            ParamSpec("maxval", 0.05, -VALUE_LIMIT, VALUE_LIMIT, "upper bound"),
        ),
    ),
    "random_normal": Spec(
        "random_normal",
        "Normal with mean and stddev.",
        RandomNormal,
        (
            ParamSpec("mean", 0.0, -VALUE_LIMIT, VALUE_LIMIT, "mean"),
            ParamSpec("stddev", 0.05, 0.0, VALUE_LIMIT, "standard deviation"),
        ),
    ),
    "glorot_uniform": Spec(
        "glorot_uniform", "Glorot/Xavier uniform, limit sqrt(6/(fan_in+fan_out)).", GlorotUniform
    ),
    "glorot_normal": Spec(
        "glorot_normal",
        "Glorot/Xavier truncated normal, variance 2/(fan_in+fan_out).",
        GlorotNormal,
    ),
    "he_uniform": Spec("he_uniform", "He uniform, limit sqrt(6/fan_in); for ReLU.", HeUniform),
    "he_normal": Spec("he_normal", "He truncated normal, variance 2/fan_in; for ReLU.", HeNormal),
    "lecun_normal": Spec("lecun_normal", "LeCun truncated normal, variance 1/fan_in.", LecunNormal),
}


def get(identifier: str | Initializer, **params: Any) -> Initializer:
    """The initializer named `identifier` built with `params` (or the instance itself)."""
    if isinstance(identifier, Initializer):
        if params:
            raise ValueError(f"initializer {identifier!r} is already built; got params {params}")
        return identifier
    return build(INITIALIZERS, KIND, identifier, params)
