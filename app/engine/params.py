"""Registry specs shared by the engine's maths modules: parameters with defaults and limits.

Every registry (`ACTIVATIONS`, `LOSSES`, `INITIALIZERS`, `REGULARIZERS`, `CONSTRAINTS`,
`OPTIMIZERS`) maps a name to a `Spec`; the API validates input and the page builds its menus
from the same specs, so a parameter's limits live in exactly one place.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")

# int is a float to the type checker; 'int' parameters are returned as int at run time.
ParamValue = float | bool


@dataclass(frozen=True)
class ParamSpec:
    """One numeric (or boolean) parameter: default, limits and a one-line description."""

    name: str
    default: ParamValue
    min: float | None = None
    max: float | None = None
    description: str = ""
    min_exclusive: bool = False
    max_exclusive: bool = False

    @property
    def kind(self) -> str:
        """'bool', 'int' or 'float', for the page's widgets and the API's coercion."""
        if isinstance(self.default, bool):
            return "bool"
        return "int" if isinstance(self.default, int) else "float"

    def limits_text(self) -> str:
        """The allowed range in words, e.g. '0 <= alpha <= 1'."""
        if self.kind == "bool":
            return f"{self.name} is true or false"
        lower = "" if self.min is None else f"{self.min:g} {'<' if self.min_exclusive else '<='} "
        upper = "" if self.max is None else f" {'<' if self.max_exclusive else '<='} {self.max:g}"
        return f"{lower}{self.name}{upper}"

    def check(self, value: object, owner: str) -> ParamValue:
        """`value` as float, int or bool; else ValueError naming the owner, value and limits."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{owner}: {self.name}={value!r} is not a boolean")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise ValueError(f"{owner}: {self.name}={value!r} is not a number")
        if self.kind == "int" and not isinstance(value, int | np.integer):
            raise ValueError(f"{owner}: {self.name}={value!r} is not an integer")
        number = float(value)
        shown: float = int(value) if self.kind == "int" else number
        if not math.isfinite(number):
            raise ValueError(f"{owner}: {self.name}={number!r} is not finite")
        too_low = self.min is not None and (
            number <= self.min if self.min_exclusive else number < self.min
        )
        too_high = self.max is not None and (
            number >= self.max if self.max_exclusive else number > self.max
        )
        if too_low or too_high:
            raise ValueError(
                f"{owner}: {self.name}={shown!r} is out of range; expected {self.limits_text()}"
            )
        return shown

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for the registry endpoint."""
        return {
            "name": self.name,
            "kind": self.kind,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "min_exclusive": self.min_exclusive,
            "max_exclusive": self.max_exclusive,
            "description": self.description,
        }


@dataclass(frozen=True)
class Spec(Generic[T]):
    """A registry entry: name, one-line description, parameters and the factory that builds it.

    `factory` is None for entries that another module builds (e.g. the stateful `prelu` and
    `rrelu` activations, which are layers); `stateful` marks those.
    """

    name: str
    description: str
    factory: Callable[..., T] | None
    params: tuple[ParamSpec, ...] = ()
    stateful: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, ParamValue]:
        """Each parameter's default, by name."""
        return {p.name: p.default for p in self.params}

    def check_params(self, kind: str, params: Mapping[str, object]) -> dict[str, ParamValue]:
        """Validate keyword parameters against this spec; ValueError for unknown names or values."""
        known = {p.name: p for p in self.params}
        owner = f"{kind} '{self.name}'"
        checked: dict[str, ParamValue] = {}
        for key, value in params.items():
            if key not in known:
                expected = ", ".join(known) or "no parameters"
                raise ValueError(f"{owner}: unknown parameter '{key}'; expected {expected}")
            checked[key] = known[key].check(value, owner)
        return checked

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description for the registry endpoint and the page's menus."""
        return {
            "name": self.name,
            "description": self.description,
            "params": [p.to_dict() for p in self.params],
            "stateful": self.stateful,
            **dict(self.extra),
        }


def lookup(registry: Mapping[str, Spec[T]], kind: str, name: object) -> Spec[T]:
    """The spec registered under `name`, or ValueError listing what exists."""
    if not isinstance(name, str) or name not in registry:
        expected = ", ".join(registry)
        raise ValueError(f"unknown {kind} {name!r}; expected one of: {expected}")
    return registry[name]


def build(
    registry: Mapping[str, Spec[T]], kind: str, name: object, params: Mapping[str, object]
) -> T:
    """Validate `params` against the named spec and call its factory."""
    spec = lookup(registry, kind, name)
    checked = spec.check_params(kind, params)
    if spec.factory is None:
        raise ValueError(
            f"{kind} '{spec.name}' has state and is built as a layer (see app/engine/layers.py), "
            "not by this registry"
        )
    return spec.factory(**checked)


def check_value(spec: Spec[Any], kind: str, name: str, value: object) -> ParamValue:
    """Validate one constructor argument against the registry's limits for it."""
    for param in spec.params:
        if param.name == name:
            return param.check(value, f"{kind} '{spec.name}'")
    raise ValueError(f"{kind} '{spec.name}': unknown parameter '{name}'")
