"""Regularizers against hand values and central finite differences."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from app.engine import regularizers
from app.engine.regularizers import REGULARIZERS

Array = npt.NDArray[np.float64]

H = 1e-6


def numeric_gradient(f: Callable[[Array], float], x: Array) -> Array:
    """Central differences of a scalar function, one coordinate at a time."""
    g = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += H
        minus[index] -= H
        g[index] = (f(plus) - f(minus)) / (2 * H)
    return g


def relative_error(analytic: Array, numeric: Array) -> float:
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(analytic - numeric)) / scale


W = np.array([[1.0, -2.0], [0.0, 3.0]])  # sum|w| = 6, sum w^2 = 14


def test_hand_values_keras_form() -> None:
    assert regularizers.get("l1", l1=0.1)(W) == pytest.approx(0.6, rel=1e-15)
    assert regularizers.get("l2", l2=0.1)(W) == pytest.approx(1.4, rel=1e-15)
    assert regularizers.get("l1_l2", l1=0.1, l2=0.2)(W) == pytest.approx(0.6 + 2.8, rel=1e-15)
    # Keras defaults: l1(0.01), l2(0.01), l1_l2(0, 0).
    assert regularizers.get("l1")(W) == pytest.approx(0.06, rel=1e-15)
    assert regularizers.get("l2")(W) == pytest.approx(0.14, rel=1e-15)
    assert regularizers.get("l1_l2")(W) == 0.0


def test_hand_gradients() -> None:
    np.testing.assert_array_equal(regularizers.get("l1", l1=0.5).grad(W), [[0.5, -0.5], [0, 0.5]])
    np.testing.assert_allclose(regularizers.get("l2", l2=0.5).grad(W), [[1.0, -2.0], [0.0, 3.0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("name", "params"),
    [("l1", {"l1": 0.3}), ("l2", {"l2": 0.7}), ("l1_l2", {"l1": 0.2, "l2": 0.05})],
)
def test_gradient_matches_finite_differences(
    name: str, params: dict[str, float], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(int(rng.integers(1, 5)), int(rng.integers(1, 5))))
    w = np.where(np.abs(w) < 0.05, 0.5, w)  # keep |w| away from l1's kink at 0
    reg = regularizers.get(name, **params)
    assert relative_error(reg.grad(w), numeric_gradient(reg, w)) <= 1e-6


def test_bad_rates_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"regularizer 'l1': l1=-0\.1 is out of range"):
        regularizers.get("l1", l1=-0.1)
    with pytest.raises(ValueError, match="l2=nan is not finite"):
        regularizers.L2(l2=float("nan"))
    with pytest.raises(ValueError, match="unknown regularizer 'l3'; expected one of: l1, l2"):
        regularizers.get("l3")


def test_registry_and_aliases() -> None:
    assert set(REGULARIZERS) == {"l1", "l2", "l1_l2"}
    assert regularizers.l1 is regularizers.L1 and regularizers.l1_l2 is regularizers.L1L2
    for name, spec in REGULARIZERS.items():
        built = regularizers.get(name)
        assert built.name == name and built.get_config() == spec.defaults()
    reg = regularizers.get("l2")
    assert regularizers.get(reg) is reg
