"""Datasets against independent golds: TFP's formulas recomputed here, hand-made numbers."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.datasets import (
    DATASETS,
    FEATURES,
    MIN_SAMPLES,
    augment,
    dataset_from_points,
    featurize,
    infer_kind,
    make_dataset,
    parse_csv,
    preview,
    to_csv,
)
from app.settings import get_settings

TABLES = {
    # The lecture's truth tables, rows (0,0), (0,1), (1,0), (1,1).
    "xor-table": [0, 1, 1, 0],
    "and-table": [0, 0, 0, 1],
    "or-table": [0, 1, 1, 1],
}
GENERATED = [name for name in DATASETS if name not in TABLES]
MULTICLASS = {"spiral-3": 3, "blobs-3": 3, "blobs-4": 4, "blobs-5": 5, "blobs-6": 6}


def all_points(name: str, n: int | None = None, noise: float = 0.0, seed: int = 0):
    """Train and test together."""
    data = make_dataset(name, n_samples=n, noise=noise, seed=seed)
    return np.vstack([data.x_train, data.x_test]), np.concatenate([data.y_train, data.y_test])


# Each rule below is written from TFP's dataset.ts / the task text, not from app code.
def circle_rule(p):
    return (np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2) < 2.5).astype(int)


def xor_rule(p):
    return (p[:, 0] * p[:, 1] >= 0).astype(int)


def plane_rule(p):
    return (p[:, 0] + p[:, 1]) / 10


def reg_gauss_rule(p):
    centres = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]
    out = []
    for x, y in p:
        best = 0.0
        for cx, cy, sign in centres:
            value = sign * min(1.0, max(0.0, 1 - math.dist((x, y), (cx, cy)) / 2))
            if abs(value) > abs(best):
                best = value
        out.append(best)
    return np.array(out)


def spiral_arm_residual(p, labels, turns):
    """Distance of each point from its arm: r = 5 i/n, t = 1.75 * 2 pi * i/n + turn[label]."""
    r = np.sqrt(p[:, 0] ** 2 + p[:, 1] ** 2)
    t = 1.75 * 2 * np.pi * r / 5 + np.asarray(turns)[labels]
    return np.max(np.abs(p - np.column_stack([r * np.sin(t), r * np.cos(t)])))


def moons_rule_residual(p, labels):
    """scikit-learn's moons, shifted by (1/2, 1/4) and scaled 3.5: distance from each moon."""
    u = p / 3.5 + np.array([0.5, 0.25])
    upper = np.abs(np.hypot(u[:, 0], u[:, 1]) - 1) + np.maximum(0, -u[:, 1])  # (cos t, sin t)
    lower = np.abs(np.hypot(1 - u[:, 0], 0.5 - u[:, 1]) - 1) + np.maximum(0, u[:, 1] - 0.5)
    return np.max(np.where(labels == 0, upper, lower))


# ---- the registry -------------------------------------------------------------------------


def test_registry_lists_every_dataset_the_task_names() -> None:
    expected = {"circle", "xor", "gauss", "spiral", "reg-plane", "reg-gauss", "moons"}
    expected |= set(TABLES) | set(MULTICLASS)
    assert expected == set(DATASETS)
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.description
        expected_classes = {"binary": 2, "regression": 0}.get(spec.kind, MULTICLASS.get(name))
        assert spec.n_classes == expected_classes, name


def test_public_description_is_plain_json() -> None:
    public = DATASETS["xor-table"].public()
    assert json.loads(json.dumps(public)) == public
    assert public["kind"] == "binary" and public["fixed"] is True
    assert "swap x, y" in public["symmetries"] and "identity" not in public["symmetries"]
    assert DATASETS["circle"].public()["symmetries"] == ["mirror x", "any rotation"]


def test_tfp_default_sizes() -> None:
    # TFP: 500 points for classification, 1,200 for regression.
    for name in ("circle", "xor", "gauss", "spiral"):
        assert DATASETS[name].default_samples == 500
    for name in ("reg-plane", "reg-gauss"):
        assert DATASETS[name].default_samples == 1200


# ---- shapes, labels, balance -------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATED)
def test_shapes_label_sets_and_balance(name: str) -> None:
    spec = DATASETS[name]
    data = make_dataset(name, n_samples=101, seed=3)
    assert data.name == name and data.kind == spec.kind and data.n_classes == spec.n_classes
    assert data.x_train.shape == (50, 2) and data.x_test.shape == (51, 2)
    assert data.y_train.shape == (50,) and data.y_test.shape == (51,)
    assert data.x_train.dtype == np.float64
    labels = np.concatenate([data.y_train, data.y_test])
    if spec.kind == "regression":
        assert labels.dtype == np.float64
        return
    assert labels.dtype == np.int64
    counts = np.bincount(labels, minlength=spec.n_classes)
    assert len(counts) == spec.n_classes
    if name == "xor":
        # TFP draws xor points uniformly, so its balance is binomial(101, 1/2): 3.5 sd here.
        assert abs(counts[1] - 50.5) <= 18
        return
    # 101 points over k classes at noise 0: every class gets floor or ceil of 101/k.
    assert counts.min() == 101 // spec.n_classes and counts.max() <= 101 // spec.n_classes + 1


@pytest.mark.parametrize("name", list(TABLES))
def test_truth_tables_are_the_lecture_tables_with_train_equal_test(name: str) -> None:
    data = make_dataset(name, n_samples=50, noise=0.3, train_ratio=0.1, seed=9)
    rows = [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert data.x_train.tolist() == rows and data.x_test.tolist() == rows
    assert data.y_train.tolist() == TABLES[name] and data.y_test.tolist() == TABLES[name]
    assert data.kind == "binary" and data.n_classes == 2


# ---- TFP's formulas at noise 0 -----------------------------------------------------------


def test_circle_matches_the_radius_rule_and_the_two_rings() -> None:
    points, labels = all_points("circle", 400)
    assert np.array_equal(labels, circle_rule(points))
    r = np.hypot(points[:, 0], points[:, 1])
    assert np.all((r < 2.5) | ((r >= 3.5) & (r <= 5)))
    assert np.sum(r < 2.5) == 200


def test_xor_matches_the_sign_rule_and_keeps_off_the_axes() -> None:
    points, labels = all_points("xor", 400)
    assert np.array_equal(labels, xor_rule(points))
    assert np.min(np.abs(points)) >= 0.3 and np.max(np.abs(points)) <= 5.3


def test_gauss_means_and_tfp_variance_scale() -> None:
    for noise, variance in ((0.0, 0.5), (0.5, 4.0)):  # TFP: variance 0.5 .. 4 over noise 0 .. 0.5
        points, labels = all_points("gauss", 4000, noise=noise)
        for label, centre in ((1, (2, 2)), (0, (-2, -2))):
            cloud = points[labels == label]
            assert np.allclose(cloud.mean(axis=0), centre, atol=0.15), (noise, label)
            assert np.allclose(cloud.var(axis=0), variance, rtol=0.1), (noise, label)


def test_spirals_lie_on_their_arms() -> None:
    points, labels = all_points("spiral", 300)
    # TFP: the + arm (our class 1) is unturned, the - arm (class 0) turned by pi.
    assert spiral_arm_residual(points, labels, [np.pi, 0.0]) < 1e-9
    points, labels = all_points("spiral-3", 300)
    assert spiral_arm_residual(points, labels, [0, 2 * np.pi / 3, 4 * np.pi / 3]) < 1e-9


def test_moons_lie_on_their_half_circles() -> None:
    points, labels = all_points("moons", 300)
    assert moons_rule_residual(points, labels) < 1e-9


def test_blobs_centres_on_the_circle() -> None:
    for name, k in MULTICLASS.items():
        if not name.startswith("blobs"):
            continue
        points, labels = all_points(name, 600 * k)
        for c in range(k):
            angle = np.pi / 2 + 2 * np.pi * c / k
            centre = 4 * np.array([np.cos(angle), np.sin(angle)])
            assert np.allclose(points[labels == c].mean(axis=0), centre, atol=0.12), (name, c)


def test_regression_targets_match_tfp_formulas() -> None:
    for name, rule in (("reg-plane", plane_rule), ("reg-gauss", reg_gauss_rule)):
        points, targets = all_points(name, 500)
        assert np.all(np.abs(points) <= 6)
        np.testing.assert_allclose(targets, rule(points), rtol=0, atol=1e-12)


def test_label_noise_moves_only_labels_and_only_near_the_boundary() -> None:
    clean_points, clean = all_points("circle", 1000, noise=0.0, seed=5)
    points, noisy = all_points("circle", 1000, noise=0.1, seed=5)
    # TFP draws points clean; noise U(-5, 5)*0.1 per coordinate moves a point at most
    # 0.5*sqrt(2) when its label is read.
    assert np.array_equal(points, clean_points)
    flipped = noisy != clean
    assert flipped.any()
    r = np.hypot(points[:, 0], points[:, 1])
    assert np.all(np.abs(r[flipped] - 2.5) <= 0.5 * math.sqrt(2))
    points, noisy = all_points("xor", 1000, noise=0.1, seed=5)
    flipped = noisy != xor_rule(points)
    assert flipped.any() and np.all(np.min(np.abs(points[flipped]), axis=1) <= 0.5)


def test_position_noise_is_bounded_by_tfp_uniform_jitter() -> None:
    clean, labels = all_points("spiral", 200, noise=0.0, seed=2)
    noisy, noisy_labels = all_points("spiral", 200, noise=0.4, seed=2)
    assert np.array_equal(labels, noisy_labels)
    shift = np.abs(noisy - clean)
    assert 0 < shift.max() <= 0.4


# ---- seeding and splitting -------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATED)
def test_same_arguments_give_identical_arrays_and_another_seed_differs(name: str) -> None:
    args = {"n_samples": 60, "noise": 0.2, "train_ratio": 0.7}
    a, b = make_dataset(name, seed=11, **args), make_dataset(name, seed=11, **args)
    c = make_dataset(name, seed=12, **args)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.x_train, c.x_train)


def test_global_numpy_random_state_is_untouched() -> None:
    np.random.seed(1234)
    expected = np.random.random()
    np.random.seed(1234)
    make_dataset("circle", n_samples=50, noise=0.2, seed=1)
    assert np.random.random() == expected


@pytest.mark.parametrize(
    ("n", "ratio", "n_train"),
    [(10, 0.3, 3), (100, 0.29, 29), (101, 0.5, 50), (500, 0.9, 450), (4, 0.1, 1), (4, 0.9, 3)],
)
def test_train_ratio_split_sizes(n: int, ratio: float, n_train: int) -> None:
    data = make_dataset("xor", n_samples=n, train_ratio=ratio)
    assert len(data.x_train) == len(data.y_train) == n_train
    assert len(data.x_test) == len(data.y_test) == n - n_train


def test_split_is_a_prefix_of_one_shuffle_whatever_the_ratio() -> None:
    points, labels = preview("moons", 80, 0.1, 4)
    for ratio in (0.2, 0.5, 0.8):
        data = make_dataset("moons", n_samples=80, noise=0.1, train_ratio=ratio, seed=4)
        assert np.array_equal(np.vstack([data.x_train, data.x_test]), points)
        assert np.array_equal(np.concatenate([data.y_train, data.y_test]), labels)
    # Shuffled: classes are generated in blocks, so an unshuffled set would start with 40 zeros.
    assert 0 < labels[:40].sum() < 40


def test_dataset_arrays_are_read_only() -> None:
    data = make_dataset("circle", n_samples=20)
    with pytest.raises(ValueError, match="read-only"):
        data.x_train[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        data.y_test[0] = 1


# ---- validation ------------------------------------------------------------------------


def test_bad_arguments_name_the_field_the_value_and_the_limit() -> None:
    limit = get_settings().max_samples
    cases = [
        ({"name": "spirals"}, r"dataset='spirals' is unknown; expected one of circle, xor"),
        ({"n_samples": 3}, r"n_samples=3 is below the minimum of 4"),
        ({"n_samples": limit + 1}, rf"n_samples={limit + 1} exceeds the limit max_samples={limit}"),
        ({"n_samples": 10.5}, r"n_samples must be an integer in \[4, "),
        ({"n_samples": True}, r"n_samples must be an integer"),
        ({"noise": 0.6}, r"noise=0.6 is outside \[0.0, 0.5\]"),
        ({"noise": -0.01}, r"noise=-0.01 is outside \[0.0, 0.5\]"),
        ({"noise": float("nan")}, r"noise=nan is outside \[0.0, 0.5\]"),
        ({"noise": "0.1"}, r"noise must be a number in \[0.0, 0.5\], got '0.1'"),
        ({"train_ratio": 0.05}, r"train_ratio=0.05 is outside \[0.1, 0.9\]"),
        ({"train_ratio": 0.95}, r"train_ratio=0.95 is outside \[0.1, 0.9\]"),
        ({"train_ratio": float("inf")}, r"train_ratio=inf is outside \[0.1, 0.9\]"),
        ({"seed": -1}, r"seed must be an integer >= 0, got -1"),
    ]
    for change, message in cases:
        kwargs = {"name": "circle", **change}
        with pytest.raises(ValueError, match=message):
            make_dataset(**kwargs)
    assert MIN_SAMPLES == 4
    assert len(make_dataset("circle", n_samples=limit).x_train) == limit // 2


# ---- augmentation ----------------------------------------------------------------------



def table_rule(name: str):
    """The truth table read at each (0/1, 0/1) point."""
    rows = dict(zip([(0, 0), (0, 1), (1, 0), (1, 1)], TABLES[name], strict=True))
    return lambda p: np.array([rows[(round(a), round(b))] for a, b in p])


RULES = {
    "circle": circle_rule,
    "xor": xor_rule,
    "reg-plane": plane_rule,
    "reg-gauss": reg_gauss_rule,
    **{name: table_rule(name) for name in TABLES},
}


@pytest.mark.parametrize("name", list(RULES))
def test_augmentation_keeps_the_labelling_rule(name: str) -> None:
    points, labels = all_points(name, 300)
    rng = np.random.default_rng(0)
    moved, moved_labels = augment(points, labels, name, rng, jitter=0.0)
    assert not np.allclose(moved, points)  # something actually moved
    assert moved_labels.dtype == labels.dtype
    np.testing.assert_allclose(moved_labels, RULES[name](moved), rtol=0, atol=1e-12)


def test_augmented_circle_keeps_radii_and_uses_every_angle() -> None:
    points, labels = all_points("circle", 400)
    moved, _ = augment(points, labels, "circle", np.random.default_rng(1), jitter=0.0)
    np.testing.assert_allclose(np.hypot(*moved.T), np.hypot(*points.T), rtol=1e-12)
    turned = np.arctan2(moved[:, 1], moved[:, 0]) - np.arctan2(points[:, 1], points[:, 0])
    quarters = np.floor(np.mod(turned, 2 * np.pi) / (np.pi / 2))
    assert set(quarters.tolist()) == {0, 1, 2, 3}


def test_augmented_spirals_and_moons_stay_on_their_arms() -> None:
    rng = np.random.default_rng(2)
    points, labels = all_points("spiral", 300)
    moved, moved_labels = augment(points, labels, "spiral", rng, jitter=0.0)
    assert not np.array_equal(moved_labels, labels)
    assert spiral_arm_residual(moved, moved_labels, [np.pi, 0.0]) < 1e-9
    points, labels = all_points("spiral-3", 300)
    moved, moved_labels = augment(points, labels, "spiral-3", rng, jitter=0.0)
    assert spiral_arm_residual(moved, moved_labels, [0, 2 * np.pi / 3, 4 * np.pi / 3]) < 1e-9
    points, labels = all_points("moons", 300)
    moved, moved_labels = augment(points, labels, "moons", rng, jitter=0.0)
    assert moons_rule_residual(moved, moved_labels) < 1e-9


def test_augmented_gaussians_keep_their_class_centres() -> None:
    rng = np.random.default_rng(3)
    points, labels = all_points("gauss", 4000)
    moved, moved_labels = augment(points, labels, "gauss", rng, jitter=0.0)
    assert np.allclose(moved[moved_labels == 1].mean(axis=0), (2, 2), atol=0.15)
    assert np.allclose(moved[moved_labels == 0].mean(axis=0), (-2, -2), atol=0.15)
    for k in (3, 6):
        points, labels = all_points(f"blobs-{k}", 500 * k)
        moved, moved_labels = augment(points, labels, f"blobs-{k}", rng, jitter=0.0)
        for c in range(k):
            angle = np.pi / 2 + 2 * np.pi * c / k
            centre = 4 * np.array([np.cos(angle), np.sin(angle)])
            assert np.allclose(moved[moved_labels == c].mean(axis=0), centre, atol=0.15)


def test_augmentation_never_touches_its_inputs_and_returns_fresh_arrays() -> None:
    data = make_dataset("xor", n_samples=40, noise=0.1)  # read-only arrays: any write raises
    x_before, y_before = data.x_train.copy(), data.y_train.copy()
    moved, moved_labels = augment(data.x_train, data.y_train, "xor", np.random.default_rng(0))
    assert np.array_equal(data.x_train, x_before) and np.array_equal(data.y_train, y_before)
    assert not np.shares_memory(moved, data.x_train)
    assert not np.shares_memory(moved_labels, data.y_train)
    moved[0, 0] = 99.0  # writable
    labels = np.array([[0.0], [1.0], [1.0], [0.0]])  # float (n, 1) labels keep their form
    _, column = augment(np.ones((4, 2)), labels, "xor", np.random.default_rng(0))
    assert column.shape == (4, 1) and column.dtype == np.float64


def test_jitter_is_gaussian_of_the_given_scale_and_user_data_gets_only_jitter() -> None:
    points = np.zeros((20000, 2))
    labels = np.arange(20000) % 3
    for name in (None, "user"):
        moved, moved_labels = augment(points, labels, name, np.random.default_rng(5), jitter=0.2)
        assert np.array_equal(moved_labels, labels)
        assert abs(moved.mean()) < 0.01 and abs(moved.std() - 0.2) < 0.01


def test_augmentation_is_seeded_by_the_callers_generator() -> None:
    points, labels = all_points("circle", 50, noise=0.2)
    a = augment(points, labels, "circle", np.random.default_rng(7))
    b = augment(points, labels, "circle", np.random.default_rng(7))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_augmentation_refuses_bad_input() -> None:
    rng = np.random.default_rng(0)
    good = np.zeros((4, 2))
    with pytest.raises(ValueError, match="dataset='nope' is unknown"):
        augment(good, np.zeros(4), "nope", rng)
    with pytest.raises(ValueError, match=r"points must have shape \(n, 2\), got \(4, 3\)"):
        augment(np.zeros((4, 3)), np.zeros(4), "xor", rng)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        augment(good, np.zeros(5), "xor", rng)
    with pytest.raises(ValueError, match=r"jitter=-0\.1 must be a finite number >= 0"):
        augment(good, np.zeros(4), "xor", rng, jitter=-0.1)
    with pytest.raises(ValueError, match=r"class indices 0..2"):
        augment(good, np.array([0, 1, 2, 3]), "spiral-3", rng)


# ---- features --------------------------------------------------------------------------


def test_features_by_hand() -> None:
    points = np.array([[1.0, 2.0], [-0.5, 0.0], [3.0, -3.0]])
    # sin 1 = 0.8414709848, sin 2 = 0.9092974268, sin 3 = 0.1411200081, sin 0.5 = 0.4794255386
    expected = {
        "x1": [1.0, -0.5, 3.0],
        "x2": [2.0, 0.0, -3.0],
        "x1_sq": [1.0, 0.25, 9.0],
        "x2_sq": [4.0, 0.0, 9.0],
        "x1x2": [2.0, -0.0, -9.0],
        "sin_x1": [0.8414709848, -0.4794255386, 0.1411200081],
        "sin_x2": [0.9092974268, 0.0, -0.1411200081],
    }
    assert list(FEATURES) == list(expected)
    matrix = featurize(points, list(expected))
    assert matrix.shape == (3, 7)
    np.testing.assert_allclose(matrix, np.array(list(expected.values())).T, atol=1e-10)
    np.testing.assert_allclose(featurize(points, ["x2_sq", "x1"]), [[4, 1], [0, -0.5], [9, 3]])
    assert FEATURES["x1_sq"].label == "x1²" and FEATURES["x1x2"].label == "x1·x2"
    np.testing.assert_allclose(FEATURES["x1x2"](points), [2.0, 0.0, -9.0])


def test_featurize_refuses_bad_input() -> None:
    points = np.zeros((2, 2))
    with pytest.raises(ValueError, match="features: 'x3' is unknown; expected one of x1, x2"):
        featurize(points, ["x1", "x3"])
    with pytest.raises(ValueError, match=r"at least one of .*, got \[\]"):
        featurize(points, [])
    with pytest.raises(ValueError, match="features: x1 listed more than once"):
        featurize(points, ["x1", "x2", "x1"])
    with pytest.raises(ValueError, match=r"points must have shape \(n, 2\), got \(2,\)"):
        featurize(np.zeros(2), ["x1"])


# ---- CSV -------------------------------------------------------------------------------


def test_parse_csv_good_file_with_header_blank_lines_and_spaces() -> None:
    text = "x1,x2,label\n\n1.5, -2,1\n  0,3e-1 ,0\r\n\n-4.25,.5,1\n"
    points, labels = parse_csv(text, max_rows=10)
    assert points.tolist() == [[1.5, -2.0], [0.0, 0.3], [-4.25, 0.5]]
    assert labels.tolist() == [1, 0, 1] and labels.dtype == np.int64
    points, labels = parse_csv("1,2,0.25\n3,4,-1\n", max_rows=10)  # no header, regression
    assert points.tolist() == [[1, 2], [3, 4]] and labels.tolist() == [0.25, -1.0]
    assert labels.dtype == np.float64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x1,x2,label\n1,2,0\n\na,b\n", "line 4: expected 3 numbers x1,x2,label, got 'a,b'"),
        ("1,2,0\n1,2\n", "line 2: expected 3 numbers x1,x2,label, got '1,2'"),
        ("1,2,0\n1,2,0,4\n", "line 2: expected 3 numbers x1,x2,label, got '1,2,0,4'"),
        ("1,2,0\n\n\n1,x,0\n", "line 4: expected 3 numbers x1,x2,label, got '1,x,0'"),
        ("1,2,0\n1_0,2,0\n", "line 2: expected 3 numbers x1,x2,label, got '1_0,2,0'"),
        ("1,2,0\n3,nan,1\n", "line 2: x2 is 'nan'; values must be finite"),
        ("1,2,0\n3,4,-inf\n", "line 2: label is '-inf'; values must be finite"),
        ("1e999,2,0\n", "line 1: x1 is '1e999'; values must be finite"),
        ("x1,x2,label\n\n", "the CSV has no data rows"),
        ("", "the CSV has no data rows"),
    ],
)
def test_parse_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_csv(text, max_rows=10)
    assert str(caught.value).startswith(message), str(caught.value)


def test_parse_csv_enforces_the_row_limit() -> None:
    rows = "x1,x2,label\n" + "".join(f"{i},{i},0\n" for i in range(5))
    assert len(parse_csv(rows, max_rows=5)[0]) == 5
    with pytest.raises(ValueError, match="line 6: too many rows; the limit is max_rows=4"):
        parse_csv(rows, max_rows=4)
    limit = get_settings().max_samples
    too_many = "".join("1,1,0\n" for _ in range(limit + 1))
    with pytest.raises(ValueError, match=f"line {limit + 1}: .*max_rows={limit}"):
        parse_csv(too_many)


def test_parse_csv_with_a_classification_kind_demands_class_labels() -> None:
    with pytest.raises(ValueError, match=r"line 3: label 0\.5 is not a class index"):
        parse_csv("1,1,0\n1,1,1\n1,1,0.5\n", max_rows=10, kind="multiclass")
    with pytest.raises(ValueError, match=r"line 2: label 2\.0 is not 0 or 1"):
        parse_csv("1,1,0\n1,1,2\n", max_rows=10, kind="binary")
    _, targets = parse_csv("1,1,0\n1,1,2\n", max_rows=10, kind="regression")
    assert targets.dtype == np.float64


def test_to_csv_round_trips_exactly() -> None:
    for name in ("spiral", "reg-gauss", "blobs-4"):
        points, labels = preview(name, 30, 0.3, 8)
        back_points, back_labels = parse_csv(to_csv(points, labels), max_rows=30)
        assert np.array_equal(back_points, points) and np.array_equal(back_labels, labels)
        assert back_labels.dtype == labels.dtype
    assert to_csv(np.array([[0.5, -1.0]]), np.array([1])) == "x1,x2,label\n0.5,-1.0,1\n"


def test_infer_kind() -> None:
    assert infer_kind(np.array([0, 1, 1])) == ("binary", 2)
    assert infer_kind(np.array([0.0, 0.0])) == ("binary", 2)
    assert infer_kind(np.array([0, 2, 1, 2])) == ("multiclass", 3)
    assert infer_kind(np.array([0.0, 0.5])) == ("regression", 0)
    assert infer_kind(np.array([-1, 1])) == ("regression", 0)


def test_dataset_from_points() -> None:
    points = np.arange(20.0).reshape(10, 2)
    data = dataset_from_points(points, np.arange(10) % 3, train_ratio=0.3, seed=1)
    assert (data.name, data.kind, data.n_classes) == ("user", "multiclass", 3)
    assert data.x_train.shape == (3, 2) and data.x_test.shape == (7, 2)
    together = np.vstack([data.x_train, data.x_test])
    assert sorted(together[:, 0].tolist()) == points[:, 0].tolist()
    # Each point keeps its own label through the shuffle: label = (x1 / 2) % 3 here.
    labels = np.concatenate([data.y_train, data.y_test])
    assert np.array_equal(labels, (together[:, 0] / 2).astype(int) % 3)
    same = dataset_from_points(points, np.arange(10) % 3, train_ratio=0.3, seed=1)
    assert np.array_equal(same.x_train, data.x_train)
    forced = dataset_from_points(points, np.arange(10) % 2, kind="regression")
    assert forced.kind == "regression" and forced.y_train.dtype == np.float64


def test_dataset_from_points_refuses_bad_input() -> None:
    limit = get_settings().max_samples
    with pytest.raises(ValueError, match=r"len\(points\)=3 is below the minimum of 4"):
        dataset_from_points(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=f"={limit + 1} exceeds the limit max_samples={limit}"):
        dataset_from_points(np.zeros((limit + 1, 2)), np.zeros(limit + 1))
    bad = np.zeros((5, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"points\[3\] is \[0.0, nan\]; values must be finite"):
        dataset_from_points(bad, np.zeros(5))
    with pytest.raises(ValueError, match=r"labels\[2\] is inf; values must be finite"):
        dataset_from_points(np.zeros((5, 2)), np.array([0, 1, np.inf, 0, 1]))
    with pytest.raises(ValueError, match="kind='ordinal' is unknown; expected one of binary"):
        dataset_from_points(np.zeros((5, 2)), np.zeros(5), kind="ordinal")
    with pytest.raises(ValueError, match="binary classification needs labels 0 or 1"):
        dataset_from_points(np.zeros((5, 2)), np.arange(5), kind="binary")
    with pytest.raises(ValueError, match=r"train_ratio=1.0 is outside \[0.1, 0.9\]"):
        dataset_from_points(np.zeros((5, 2)), np.zeros(5), train_ratio=1.0)


# ---- properties ------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="0123456789.,-+eEnaif x\n\r\t_", max_size=80))
def test_parse_csv_answers_any_text_with_rows_or_a_value_error(text: str) -> None:
    try:
        points, labels = parse_csv(text, max_rows=20)
    except ValueError as error:
        message = str(error)
        assert message.startswith("line ") or message.startswith("the CSV has no data rows")
        return
    assert points.shape == (len(labels), 2) and np.all(np.isfinite(points))
    assert np.all(np.isfinite(labels))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(GENERATED),
    st.integers(MIN_SAMPLES, 200),
    st.floats(0.1, 0.9),
    st.floats(0.0, 0.5),
    st.integers(0, 2**32),
)
def test_every_valid_request_splits_all_points(name, n, ratio, noise, seed) -> None:
    data = make_dataset(name, n_samples=n, noise=noise, train_ratio=ratio, seed=seed)
    n_train = len(data.x_train)
    assert n_train + len(data.x_test) == n and 1 <= n_train <= n - 1
    assert abs(n_train - n * ratio) < 1 + 1e-6
    assert np.all(np.isfinite(data.x_train)) and np.all(np.isfinite(data.y_test))
