"""Training-time augmentation: a random symmetry of the dataset per point, then jitter."""

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numpy as np

from app.data.registry import DATASETS, DatasetSpec
from app.data.symmetry import stack_matrices
from app.data.types import Array, IntArray, Labels

USER_DATA_NAME = "user"  # uploaded points: no known symmetry, jitter only


def resolve_spec(spec_or_name: DatasetSpec | str | None) -> DatasetSpec | None:
    """The registry entry for a name; None for user data."""
    if spec_or_name is None or isinstance(spec_or_name, DatasetSpec):
        return spec_or_name
    if spec_or_name == USER_DATA_NAME:
        return None
    if spec_or_name not in DATASETS:
        known = ", ".join([*DATASETS, USER_DATA_NAME])
        raise ValueError(f"dataset={spec_or_name!r} is unknown; expected one of {known}")
    return DATASETS[spec_or_name]


@dataclass(frozen=True, eq=False)
class _Group:
    """A dataset's symmetry group as arrays, built once: augmentation runs every epoch."""

    matrices: Array  # (g, 2, 2)
    classes: IntArray  # (g, n_classes): classes[e, c] is where element e sends class c
    signs: Array  # (g,): regression target factors


@lru_cache(maxsize=64)
def _registered_group(name: str) -> _Group:
    """The group arrays of a registry entry, keyed by name (hashing a spec costs more)."""
    return _build_group(DATASETS[name])


def _group(spec: DatasetSpec) -> _Group:
    """The arrays of spec's symmetry group, cached for registry entries."""
    if DATASETS.get(spec.name) is spec:
        return _registered_group(spec.name)
    return _build_group(spec)


def _build_group(spec: DatasetSpec) -> _Group:
    """The arrays of spec's symmetry group."""
    identity = tuple(range(spec.n_classes))
    classes = [s.permutation or identity for s in spec.symmetries]
    return _Group(
        stack_matrices(spec.symmetries),
        np.array(classes, dtype=np.int64).reshape(len(classes), spec.n_classes),
        np.array([s.sign for s in spec.symmetries], dtype=np.float64),
    )


def _check(points: Array, labels_shape: tuple[int, ...], jitter: float) -> None:
    """Refuse shapes, non-finite values and a negative jitter, naming what arrived."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    if labels_shape not in ((len(points),), (len(points), 1)):
        raise ValueError(
            f"labels must have shape ({len(points)},) or ({len(points)}, 1), got {labels_shape}"
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("points must be finite, got NaN or inf")
    if not (math.isfinite(jitter) and jitter >= 0):
        raise ValueError(f"jitter={jitter} must be a finite number >= 0")


def _relabel(flat: Array, spec: DatasetSpec, group: _Group, chosen: IntArray) -> Array:
    """Move each label by its point's group element: permute classes or flip the target sign."""
    if spec.kind == "regression":
        return flat * group.signs[chosen]
    classes = flat.astype(np.int64)
    if np.any(classes != flat) or np.any((classes < 0) | (classes >= spec.n_classes)):
        raise ValueError(
            f"labels of {spec.name!r} must be class indices 0..{spec.n_classes - 1}"
        )
    return group.classes[chosen, classes].astype(np.float64)


def augment(
    points: Array,
    labels: Labels,
    spec_or_name: DatasetSpec | str | None,
    rng: np.random.Generator,
    jitter: float = 0.1,
) -> tuple[Array, Labels]:
    """A fresh augmented copy of training points: per point a random symmetry, then jitter.

    points (n, 2), labels (n,) or (n, 1) -> new arrays of the same shapes and dtypes; the
    inputs are never written. Each point draws one element of the dataset's symmetry group
    (and, for rotation-invariant data, a uniform angle) and moves p -> M (p - c) + c, its
    label moving as that element says; then N(0, jitter^2) is added to each coordinate.
    User data (None or "user") only gets jitter. Never apply this to test points.
    """
    points = np.asarray(points, dtype=np.float64)
    given = np.asarray(labels)
    _check(points, given.shape, jitter)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    spec = resolve_spec(spec_or_name)
    n = len(points)
    flat = given.reshape(-1).astype(np.float64)  # a copy: the input is never written
    if spec is None:
        moved = points + rng.standard_normal((n, 2)) * jitter
        return moved, cast(Labels, flat.reshape(given.shape).astype(given.dtype))
    group = _group(spec)
    chosen = rng.integers(0, len(spec.symmetries), n)
    m = group.matrices[chosen]  # (n, 2, 2)
    cx, cy = spec.centre
    x = m[:, 0, 0] * (points[:, 0] - cx) + m[:, 0, 1] * (points[:, 1] - cy)
    y = m[:, 1, 0] * (points[:, 0] - cx) + m[:, 1, 1] * (points[:, 1] - cy)
    if spec.any_rotation:
        # A uniform turn after the drawn mirror: the whole rotation-and-mirror group.
        angle = rng.uniform(0.0, 2 * np.pi, n)
        cos, sin = np.cos(angle), np.sin(angle)
        x, y = cos * x - sin * y, sin * x + cos * y
    moved = np.column_stack([x + cx, y + cy]) + rng.standard_normal((n, 2)) * jitter
    moved_labels = _relabel(flat, spec, group, chosen)
    # Same dtype and shape as given: int64 classes stay int64, (n, 1) stays (n, 1).
    return moved, cast(Labels, moved_labels.reshape(given.shape).astype(given.dtype))
