"""Input features: TensorFlow Playground's seven, computed from the raw (x1, x2) points."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.data.types import Array


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature: its key, how the page labels it, and its formula on (n, 2) points."""

    name: str
    label: str
    fn: Callable[[Array], Array] = field(repr=False, compare=False)

    def __call__(self, points: Array) -> Array:
        """The feature's column, (n, 2) -> (n,)."""
        return self.fn(points)


FEATURES: dict[str, FeatureSpec] = {
    spec.name: spec
    for spec in (
        FeatureSpec("x1", "x1", lambda p: p[:, 0].copy()),
        FeatureSpec("x2", "x2", lambda p: p[:, 1].copy()),
        FeatureSpec("x1_sq", "x1²", lambda p: p[:, 0] ** 2),
        FeatureSpec("x2_sq", "x2²", lambda p: p[:, 1] ** 2),
        FeatureSpec("x1x2", "x1·x2", lambda p: p[:, 0] * p[:, 1]),
        FeatureSpec("sin_x1", "sin x1", lambda p: np.sin(p[:, 0])),
        FeatureSpec("sin_x2", "sin x2", lambda p: np.sin(p[:, 1])),
    )
}


def check_features(features: Sequence[str]) -> None:
    """Refuse an empty, unknown or repeated feature list, naming the culprit."""
    if isinstance(features, str):
        raise ValueError(f"features must be a list of names, got the string {features!r}")
    if len(features) == 0:
        raise ValueError(f"features must name at least one of {', '.join(FEATURES)}, got []")
    for name in features:
        if name not in FEATURES:
            raise ValueError(
                f"features: {name!r} is unknown; expected one of {', '.join(FEATURES)}"
            )
    repeated = sorted({name for name in features if list(features).count(name) > 1})
    if repeated:
        raise ValueError(f"features: {', '.join(repeated)} listed more than once")


def featurize(points: Array, features: Sequence[str]) -> Array:
    """The network's input matrix: points (n, 2) -> (n, len(features)), columns in order."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    check_features(features)
    return np.column_stack([FEATURES[name](points) for name in features])
