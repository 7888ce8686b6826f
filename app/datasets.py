"""Datasets: generators, the seeded train/test split, features, augmentation and CSV import.

The public surface of the dataset part (docs/design.md); the parts live in app/data/.
"""

import math
import numbers
from dataclasses import dataclass

import numpy as np

from app.data.augment import USER_DATA_NAME, augment
from app.data.csv_io import infer_kind, parse_csv, to_csv
from app.data.features import FEATURES, FeatureSpec, check_features, featurize
from app.data.registry import DATASETS, DatasetSpec
from app.data.symmetry import Symmetry
from app.data.types import KINDS, Array, IntArray, Kind, Labels
from app.settings import get_settings

# Domain ranges of TensorFlow Playground's sliders (noise 0..50 %, train ratio 10..90 %),
# not deployment limits; the sample cap is Settings.max_samples.
NOISE_RANGE = (0.0, 0.5)
TRAIN_RATIO_RANGE = (0.1, 0.9)
MIN_SAMPLES = 4

__all__ = [
    "DATASETS",
    "FEATURES",
    "KINDS",
    "MIN_SAMPLES",
    "NOISE_RANGE",
    "TRAIN_RATIO_RANGE",
    "USER_DATA_NAME",
    "Array",
    "Dataset",
    "DatasetSpec",
    "FeatureSpec",
    "IntArray",
    "Kind",
    "Labels",
    "Symmetry",
    "augment",
    "check_features",
    "dataset_from_points",
    "featurize",
    "get_spec",
    "infer_kind",
    "make_dataset",
    "parse_csv",
    "preview",
    "to_csv",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A seeded split: points (n, 2) and labels (n,), read-only; the test suffix after train."""

    name: str
    kind: Kind
    n_classes: int  # 2 for binary, k for multiclass, 0 for regression
    x_train: Array
    y_train: Labels
    x_test: Array
    y_test: Labels


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`, or a ValueError listing the known names."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is unknown; expected one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _check_real(field: str, value: object, low: float, high: float) -> float:
    """A finite real in [low, high], or a ValueError naming the field, value and limits."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{field} must be a number in [{low}, {high}], got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{field}={value!r} is outside [{low}, {high}]")
    return number


def _check_n_samples(n_samples: object, field: str = "n_samples") -> int:
    """A whole number of points between MIN_SAMPLES and Settings.max_samples."""
    limit = get_settings().max_samples
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
        raise ValueError(
            f"{field} must be an integer in [{MIN_SAMPLES}, {limit}], got {n_samples!r}"
        )
    count = int(n_samples)
    if count < MIN_SAMPLES:
        raise ValueError(f"{field}={count} is below the minimum of {MIN_SAMPLES}")
    if count > limit:
        raise ValueError(f"{field}={count} exceeds the limit max_samples={limit}")
    return count


def _check_seed(seed: object) -> int:
    """A non-negative integer seed (what np.random.default_rng accepts)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _split_index(n: int, train_ratio: float) -> int:
    """TFP's floor(n * ratio), kept within 1..n-1 so both parts have a point."""
    # The epsilon keeps e.g. 100 * 0.29 = 28.999999999999996 at 29.
    return min(n - 1, max(1, math.floor(n * train_ratio + 1e-9)))


def _frozen(array: np.ndarray) -> np.ndarray:
    """The array made read-only, so a shared Dataset cannot be changed under its users."""
    array.flags.writeable = False
    return array


def _split(
    name: str, kind: Kind, n_classes: int, points: Array, labels: Labels, train_ratio: float
) -> Dataset:
    """Train prefix and test suffix of already shuffled points."""
    cut = _split_index(len(points), train_ratio)
    return Dataset(
        name,
        kind,
        n_classes,
        _frozen(points[:cut].copy()),
        _frozen(labels[:cut].copy()),
        _frozen(points[cut:].copy()),
        _frozen(labels[cut:].copy()),
    )


def _shuffled(
    spec: DatasetSpec, n_samples: object, noise: object, seed: object
) -> tuple[Array, Labels]:
    """The dataset's points and labels, validated, generated and shuffled once by the seed."""
    n = spec.default_samples if n_samples is None else _check_n_samples(n_samples)
    level = _check_real("noise", noise, *NOISE_RANGE)
    rng = np.random.default_rng(_check_seed(seed))
    if spec.fixed:
        # A truth table is the table itself, in the lecture's row order.
        return spec.generator(spec.default_samples, 0.0, rng)
    points, labels = spec.generator(n, level, rng)
    order = rng.permutation(n)
    return points[order], labels[order]


def make_dataset(
    name: str,
    n_samples: int | None = None,
    noise: float = 0.0,
    train_ratio: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """Generate `name` from the seed, shuffle once, split into train prefix and test suffix.

    n_samples None means the dataset's default; noise in [0, 0.5] as TFP's 0..50 slider;
    the train part has floor(n * train_ratio) points (at least 1, leaving at least 1).
    The same arguments always give identical arrays. Truth tables ignore n_samples and
    noise (after validating them) and use their 4 points for both train and test.
    """
    spec = get_spec(name)
    ratio = _check_real("train_ratio", train_ratio, *TRAIN_RATIO_RANGE)
    points, labels = _shuffled(spec, n_samples, noise, seed)
    if spec.fixed:
        return Dataset(
            spec.name,
            spec.kind,
            spec.n_classes,
            _frozen(points.copy()),
            _frozen(labels.copy()),
            _frozen(points.copy()),
            _frozen(labels.copy()),
        )
    return _split(spec.name, spec.kind, spec.n_classes, points, labels, ratio)


def preview(
    name: str, n_samples: int | None = None, noise: float = 0.0, seed: int = 0
) -> tuple[Array, Labels]:
    """Every point and label of a dataset for a thumbnail: train then test, whatever the ratio."""
    return _shuffled(get_spec(name), n_samples, noise, seed)


def _check_user_labels(labels: np.ndarray, kind: Kind | None) -> tuple[Kind, int, Labels]:
    """The kind, class count and typed labels of user data, inferred unless `kind` is given."""
    if kind not in (None, *KINDS):
        raise ValueError(f"kind={kind!r} is unknown; expected one of {', '.join(KINDS)}")
    if not np.all(np.isfinite(labels)):
        row = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise ValueError(f"labels[{row}] is {labels[row]}; values must be finite")
    inferred, n_classes = infer_kind(labels)
    if kind is None or kind == inferred:
        chosen: Kind = inferred
    elif kind == "regression":
        chosen, n_classes = "regression", 0
    elif inferred == "regression":
        raise ValueError(f"{kind} classification needs labels that are class indices 0, 1, 2, ...")
    elif kind == "binary":
        raise ValueError(f"binary classification needs labels 0 or 1, got up to {n_classes - 1}")
    else:  # multiclass asked for labels that are all 0/1
        chosen, n_classes = "multiclass", 2
    if chosen == "regression":
        return chosen, 0, labels.astype(np.float64)
    return chosen, n_classes, labels.astype(np.int64)


def dataset_from_points(
    points: Array,
    labels: Labels,
    train_ratio: float = 0.5,
    seed: int = 0,
    kind: Kind | None = None,
) -> Dataset:
    """A Dataset named "user" from uploaded points, shuffled by the seed and split like the rest.

    points (n, 2) and labels (n,) or (n, 1), finite, MIN_SAMPLES <= n <= Settings.max_samples.
    The kind is inferred from the labels (infer_kind) unless given.
    """
    points = np.asarray(points, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    if labels.shape not in ((len(points),), (len(points), 1)):
        raise ValueError(f"labels must have shape ({len(points)},), got {labels.shape}")
    _check_n_samples(len(points), "len(points)")
    if not np.all(np.isfinite(points)):
        row = int(np.flatnonzero(~np.all(np.isfinite(points), axis=1))[0])
        raise ValueError(f"points[{row}] is {points[row].tolist()}; values must be finite")
    ratio = _check_real("train_ratio", train_ratio, *TRAIN_RATIO_RANGE)
    rng = np.random.default_rng(_check_seed(seed))
    chosen, n_classes, typed = _check_user_labels(labels.reshape(-1), kind)
    order = rng.permutation(len(points))
    return _split(USER_DATA_NAME, chosen, n_classes, points[order], typed[order], ratio)
