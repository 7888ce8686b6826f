"""Training-time augmentation: a random symmetry of the dataset per point, then jitter."""

import math
from typing import cast

import numpy as np

from app.data.registry import DATASETS, DatasetSpec
from app.data.symmetry import KEEP, stack_matrices
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


def _relabel(flat: Array, spec: DatasetSpec, chosen: IntArray) -> Array:
    """Move each label by its point's group element: permute classes or flip the target sign."""
    if spec.kind == "regression":
        signs = np.array([s.sign for s in spec.symmetries], dtype=np.float64)
        return flat * signs[chosen]
    classes = flat.astype(np.int64)
    if np.any(classes != flat) or np.any((classes < 0) | (classes >= spec.n_classes)):
        raise ValueError(
            f"labels of {spec.name!r} must be class indices 0..{spec.n_classes - 1}"
        )
    table = np.array(
        [s.permutation or tuple(range(spec.n_classes)) for s in spec.symmetries], dtype=np.int64
    )
    return table[chosen, classes].astype(np.float64)


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
    _check(points, np.shape(labels), jitter)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
    spec = resolve_spec(spec_or_name)
    n = len(points)
    symmetries = spec.symmetries if spec is not None else (KEEP,)
    chosen = rng.integers(0, len(symmetries), n)
    matrices = stack_matrices(symmetries)[chosen]
    if spec is not None and spec.any_rotation:
        angle = rng.uniform(0.0, 2 * np.pi, n)
        cos, sin = np.cos(angle), np.sin(angle)
        turns = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
        matrices = turns @ matrices
    centre = np.asarray(spec.centre if spec is not None else (0.0, 0.0))
    moved = np.einsum("nij,nj->ni", matrices, points - centre) + centre
    moved += rng.standard_normal((n, 2)) * jitter
    flat = np.asarray(labels, dtype=np.float64).reshape(-1)
    moved_labels = flat if spec is None else _relabel(flat, spec, chosen)
    # Same dtype and shape as given: int64 classes stay int64, (n, 1) stays (n, 1).
    given = np.asarray(labels)
    return moved, cast(Labels, moved_labels.reshape(given.shape).astype(given.dtype))

