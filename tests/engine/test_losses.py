"""Losses against hand-computed values, central finite differences and saturated logits."""

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from app.engine import losses
from app.engine.losses import LOSSES

Array = npt.NDArray[np.float64]

H = 1e-6


def relative_error(analytic: Array, numeric: Array) -> float:
    """||a - n|| / (||a|| + ||n||), 0 when both vanish."""
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(analytic - numeric)) / scale


def numeric_gradient(f: Callable[[Array], float], x: Array) -> Array:
    """Central differences of a scalar function, one coordinate at a time."""
    g = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += H
        minus[index] -= H
        g[index] = (f(plus) - f(minus)) / (2 * H)
    return g


def sigmoid(z: Array) -> Array:
    """Textbook logistic, the test's own (moderate z only)."""
    result: Array = 1.0 / (1.0 + np.exp(-z))
    return result


def softmax(z: Array) -> Array:
    """Textbook softmax, the test's own (moderate z only)."""
    e = np.exp(z)
    result: Array = e / e.sum(axis=1, keepdims=True)
    return result


def one_hot(labels: npt.NDArray[np.int64], k: int) -> Array:
    return np.eye(k)[labels]


# ---- values computed by hand ----


def test_mse_hand_value() -> None:
    # Rows: ((0.5-1)^2 + (2-0)^2)/2 = 2.125 and ((1-1)^2 + (-1-0)^2)/2 = 0.5; mean 1.3125.
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    p = np.array([[0.5, 2.0], [1.0, -1.0]])
    assert losses.get("mse").fn(y, p) == pytest.approx(1.3125, rel=1e-15)


def test_bce_hand_value() -> None:
    y = np.array([[1.0], [0.0]])
    p = np.array([[0.8], [0.3]])
    expected = -(math.log(0.8) + math.log(0.7)) / 2
    assert losses.get("binary_crossentropy").fn(y, p) == pytest.approx(expected, rel=1e-14)
    # A (n,) target is accepted for a single output, as Keras does.
    assert losses.get("binary_crossentropy").fn(np.array([1.0, 0.0]), p) == pytest.approx(
        expected, rel=1e-14
    )


def test_bce_averages_over_outputs_too() -> None:
    y = np.array([[1.0, 0.0]])
    p = np.array([[0.9, 0.4]])
    expected = -(math.log(0.9) + math.log(0.6)) / 2
    assert losses.get("binary_crossentropy").fn(y, p) == pytest.approx(expected, rel=1e-14)


def test_cce_and_sparse_hand_values() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    expected = -(math.log(0.2) + math.log(0.6)) / 2
    y = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert losses.get("categorical_crossentropy").fn(y, p) == pytest.approx(expected, rel=1e-14)
    sparse = losses.get("sparse_categorical_crossentropy")
    assert sparse.fn(np.array([1, 2]), p) == pytest.approx(expected, rel=1e-14)
    assert sparse.fn(np.array([[1], [2]]), p) == pytest.approx(expected, rel=1e-14)
    assert sparse.fn(np.array([1.0, 2.0]), p) == pytest.approx(expected, rel=1e-14)


def test_cce_renormalises_rows_as_keras() -> None:
    # Keras divides each row by its sum first: [2, 6, 2] is read as [0.2, 0.6, 0.2].
    p = np.array([[2.0, 6.0, 2.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    assert losses.get("categorical_crossentropy").fn(y, p) == pytest.approx(-math.log(0.6))


def test_probabilities_at_0_and_1_are_clipped_as_keras() -> None:
    bce = losses.get("binary_crossentropy")
    value = bce.fn(np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]]))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert np.all(np.isfinite(bce.grad(np.array([[1.0]]), np.array([[0.0]]))))


# ---- gradients against finite differences ----


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mse_grad(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 4)))
    y, p = rng.normal(size=shape), rng.normal(size=shape)
    loss = losses.get("mse")
    numeric = numeric_gradient(lambda q: loss.fn(y, q), p)
    assert relative_error(loss.grad(y, p), numeric) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bce_grad(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 4)))
    y = rng.integers(0, 2, shape).astype(np.float64)
    p = rng.uniform(0.05, 0.95, shape)
    loss = losses.get("binary_crossentropy")
    numeric = numeric_gradient(lambda q: loss.fn(y, q), p)
    assert relative_error(loss.grad(y, p), numeric) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("soft_targets", [False, True])
def test_cce_grad_including_the_renormalisation(seed: int, soft_targets: bool) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 6)), int(rng.integers(2, 5))
    # Unnormalised positive rows, so the gradient of Keras's row renormalisation is exercised.
    p = rng.uniform(0.1, 1.0, (n, k))
    y = rng.dirichlet(np.ones(k), n) if soft_targets else one_hot(rng.integers(0, k, n), k)
    loss = losses.get("categorical_crossentropy")
    numeric = numeric_gradient(lambda q: loss.fn(y, q), p)
    assert relative_error(loss.grad(y, p), numeric) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_cce_grad(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 6)), int(rng.integers(2, 5))
    p = softmax(rng.normal(size=(n, k)))
    labels = rng.integers(0, k, n)
    loss = losses.get("sparse_categorical_crossentropy")
    numeric = numeric_gradient(lambda q: loss.fn(labels, q), p)
    assert relative_error(loss.grad(labels, p), numeric) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bce_grad_logits_through_sigmoid(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 7)), int(rng.integers(1, 3)))
    y = rng.integers(0, 2, shape).astype(np.float64)
    z = rng.normal(0.0, 2.0, shape)
    loss = losses.get("binary_crossentropy")
    numeric = numeric_gradient(lambda v: loss.fn(y, sigmoid(v)), z)
    assert relative_error(loss.grad_logits(y, sigmoid(z)), numeric) <= 1e-6
    # The logits form is the same loss and has the same gradient.
    assert loss.fn_from_logits(y, z) == pytest.approx(loss.fn(y, sigmoid(z)), rel=1e-12)
    numeric_logits = numeric_gradient(lambda v: loss.fn_from_logits(y, v), z)
    assert relative_error(loss.grad_logits(y, sigmoid(z)), numeric_logits) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_cce_grad_logits_through_softmax(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 6)), int(rng.integers(2, 5))
    z = rng.normal(0.0, 2.0, (n, k))
    labels = rng.integers(0, k, n)
    y = labels if name.startswith("sparse") else one_hot(labels, k)
    loss = losses.get(name)
    numeric = numeric_gradient(lambda v: loss.fn(y, softmax(v)), z)
    assert relative_error(loss.grad_logits(y, softmax(z)), numeric) <= 1e-6
    assert loss.fn_from_logits(y, z) == pytest.approx(loss.fn(y, softmax(z)), rel=1e-12)
    numeric_logits = numeric_gradient(lambda v: loss.fn_from_logits(y, v), z)
    assert relative_error(loss.grad_logits(y, softmax(z)), numeric_logits) <= 1e-6


def test_cce_grad_logits_with_soft_targets() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(size=(4, 3))
    y = rng.dirichlet(np.ones(3), 4) * 0.7  # rows summing to 0.7: the general formula
    loss = losses.get("categorical_crossentropy")
    numeric = numeric_gradient(lambda v: loss.fn_from_logits(y, v), z)
    assert relative_error(loss.grad_logits(y, softmax(z)), numeric) <= 1e-6


# ---- saturation: never NaN or inf ----


def test_saturated_logits_give_exact_finite_losses() -> None:
    bce = losses.get("binary_crossentropy")
    z = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    # Two points wrong by a logit of 1000 cost 1000 each, two right ones cost ~0: mean 500.
    assert bce.fn_from_logits(y, z) == pytest.approx(500.0, rel=1e-15)
    a = np.array([[1.0], [0.0], [1.0], [0.0]])  # sigmoid(z) rounded to the end points
    np.testing.assert_array_equal(bce.grad_logits(y, a), [[0.25], [-0.25], [0.0], [0.0]])
    for name in ["categorical_crossentropy", "sparse_categorical_crossentropy"]:
        loss = losses.get(name)
        zc = np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 0.0]])
        labels = np.array([2, 1])
        yc = labels if name.startswith("sparse") else one_hot(labels, 3)
        assert loss.fn_from_logits(yc, zc) == pytest.approx(1000.0, rel=1e-15)
        ac = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        np.testing.assert_array_equal(loss.grad_logits(yc, ac), [[0.5, 0.0, -0.5], [0.0, 0.0, 0.0]])
        assert math.isfinite(loss.fn(yc, ac))
        assert np.all(np.isfinite(loss.grad(yc, ac)))


def test_mse_has_no_fused_form() -> None:
    mse = losses.get("mse")
    assert mse.fused_activation is None
    with pytest.raises(ValueError, match="'mse' has no fused output activation"):
        mse.grad_logits(np.zeros((1, 1)), np.zeros((1, 1)))


def test_fused_activations_are_named() -> None:
    assert losses.get("binary_crossentropy").fused_activation == "sigmoid"
    assert losses.get("categorical_crossentropy").fused_activation == "softmax"
    assert losses.get("sparse_categorical_crossentropy").fused_activation == "softmax"


# ---- bad input ----


def test_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(
        ValueError,
        match=r"mse: y_true has shape \(3,\) but y_pred has shape "
        r"\(4, 1\)",
    ):
        losses.get("mse").fn(np.zeros(3), np.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"y_true has shape \(2, 3\) but y_pred has shape"):
        losses.get("categorical_crossentropy").fn(np.zeros((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"y_pred has shape \(3,\); expected \(n, k\)"):
        losses.get("binary_crossentropy").fn(np.zeros(3), np.zeros(3))


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        (np.array([0, 3]), "label 3 is out of range; expected 0 <= label < 3"),
        (np.array([0, -1]), "label -1 is out of range"),
        (np.array([0.0, 1.5]), "label 1.5 is not an integer"),
        (np.array([0.0, np.nan]), "label nan is not an integer"),
        (np.zeros((2, 3)), r"y_true has shape \(2, 3\); expected integer labels of shape \(2,\)"),
        (np.array([0, 1, 2]), r"y_true has shape \(3,\)"),
    ],
)
def test_sparse_labels_are_validated(labels: Array, fragment: str) -> None:
    with pytest.raises(ValueError, match=f"sparse_categorical_crossentropy: {fragment}"):
        losses.get("sparse_categorical_crossentropy").fn(labels, np.full((2, 3), 1 / 3))


def test_unknown_loss_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown loss 'hinge'; expected one of: mse, "):
        losses.get("hinge")
    with pytest.raises(ValueError, match="unknown parameter 'from_logits'"):
        losses.get("mse", from_logits=True)


def test_registry() -> None:
    assert set(LOSSES) == {
        "mse",
        "binary_crossentropy",
        "categorical_crossentropy",
        "sparse_categorical_crossentropy",
    }
    for name, spec in LOSSES.items():
        assert losses.get(name).name == name and spec.description
        assert spec.to_dict()["output_activation"] in {"linear", "sigmoid", "softmax"}
    loss = losses.get("mse")
    assert losses.get(loss) is loss
