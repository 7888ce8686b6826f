"""Initializers against their formulas' limits and variances on large draws, and seeding."""

import math

import numpy as np
import pytest

from app.engine import initializers
from app.engine.initializers import INITIALIZERS, compute_fans

FAN_IN, FAN_OUT = 300, 500
SHAPE = (FAN_IN, FAN_OUT)  # 150,000 draws: sample variance within ~0.5% (1 sigma ~0.4%)


def truncated_unit_normal_std() -> float:
    """Std of N(0, 1) truncated to [-2, 2], from the closed form (the test's own gold)."""
    phi_2 = math.exp(-2.0) / math.sqrt(2.0 * math.pi)  # density at 2
    mass = math.erf(2.0 / math.sqrt(2.0))  # P(|x| <= 2)
    return math.sqrt(1.0 - 2.0 * 2.0 * phi_2 / mass)


def test_truncation_constant_matches_closed_form() -> None:
    gold = truncated_unit_normal_std()
    assert abs(initializers.TRUNCATED_NORMAL_STDDEV - gold) <= 1e-15 * gold


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("glorot_uniform", math.sqrt(6.0 / (FAN_IN + FAN_OUT))),
        ("he_uniform", math.sqrt(6.0 / FAN_IN)),
    ],
)
def test_uniform_schemes(name: str, limit: float) -> None:
    w = initializers.get(name)(SHAPE, np.random.default_rng(0))
    assert w.shape == SHAPE and w.dtype == np.float64
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit  # the whole interval is used
    assert w.var() == pytest.approx(limit**2 / 3.0, rel=0.02)
    assert abs(w.mean()) < 0.01 * limit


@pytest.mark.parametrize(
    ("name", "variance"),
    [
        ("glorot_normal", 2.0 / (FAN_IN + FAN_OUT)),
        ("he_normal", 2.0 / FAN_IN),
        ("lecun_normal", 1.0 / FAN_IN),
    ],
)
def test_truncated_normal_schemes_keep_the_formula_variance(name: str, variance: float) -> None:
    w = initializers.get(name)(SHAPE, np.random.default_rng(1))
    # Keras: the untruncated stddev is sqrt(variance) / 0.8796..., cut at 2 of those stddevs.
    bound = 2.0 * math.sqrt(variance) / truncated_unit_normal_std()
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert w.var() == pytest.approx(variance, rel=0.02)
    assert abs(w.mean()) < 0.01 * math.sqrt(variance)


def test_random_uniform_and_normal_use_keras_defaults() -> None:
    rng = np.random.default_rng(2)
    u = initializers.get("random_uniform")(SHAPE, rng)
    assert u.min() >= -0.05 and u.max() < 0.05
    assert u.var() == pytest.approx(0.1**2 / 12.0, rel=0.02)
    n = initializers.get("random_normal")(SHAPE, rng)
    assert n.std() == pytest.approx(0.05, rel=0.01)
    assert abs(n.mean()) < 0.001
    shifted = initializers.get("random_normal", mean=3.0, stddev=0.5)(SHAPE, rng)
    assert shifted.mean() == pytest.approx(3.0, abs=0.01)
    assert shifted.std() == pytest.approx(0.5, rel=0.01)
    wide = initializers.get("random_uniform", minval=-0.5, maxval=0.5)(SHAPE, rng)
    assert wide.min() >= -0.5 and wide.max() < 0.5 and wide.max() > 0.499


def test_constant_schemes_are_exact() -> None:
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(initializers.get("zeros")((2, 3), rng), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.get("ones")((4,), rng), np.ones(4))
    np.testing.assert_array_equal(
        initializers.get("constant", value=2.0)((3, 1), rng), np.full((3, 1), 2.0)
    )


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_same_seed_same_arrays(name: str) -> None:
    init = initializers.get(name)
    first = init((5, 7), np.random.default_rng(42))
    second = init((5, 7), np.random.default_rng(42))
    np.testing.assert_array_equal(first, second)
    if name not in {"zeros", "ones", "constant"}:
        assert not np.array_equal(first, init((5, 7), np.random.default_rng(43)))


def test_fans_follow_keras() -> None:
    assert compute_fans((3, 4)) == (3, 4)
    assert compute_fans((5,)) == (5, 5)
    assert compute_fans(()) == (1, 1)
    assert compute_fans((2, 3, 4, 5)) == (24, 30)  # receptive field 2 * 3


def test_bias_vector_uses_its_length_as_both_fans() -> None:
    w = initializers.get("glorot_uniform")((40_000,), np.random.default_rng(3))
    limit = math.sqrt(6.0 / (40_000 + 40_000))
    assert np.abs(w).max() <= limit
    assert w.var() == pytest.approx(limit**2 / 3.0, rel=0.03)


def test_bad_calls_are_refused() -> None:
    init = initializers.get("he_normal")
    with pytest.raises(ValueError, match=r"shape \(-1, 2\) must be a tuple of non-negative"):
        init((-1, 2), np.random.default_rng(0))
    with pytest.raises(
        ValueError, match=r"rng must be a numpy\.random\.Generator, got RandomState"
    ):
        init((2, 2), np.random.RandomState(0))  # type: ignore[arg-type]


def test_bad_parameters_name_the_value() -> None:
    with pytest.raises(ValueError, match=r"stddev=-0\.1 is out of range; expected 0 <= stddev"):
        initializers.get("random_normal", stddev=-0.1)
    with pytest.raises(ValueError, match=r"minval=0\.5 is above maxval=0\.1"):
        initializers.get("random_uniform", minval=0.5, maxval=0.1)
    with pytest.raises(ValueError, match="value=nan is not finite"):
        initializers.get("constant", value=float("nan"))
    with pytest.raises(ValueError, match="unknown parameter 'scale'; expected no parameters"):
        initializers.get("glorot_uniform", scale=2.0)
    with pytest.raises(ValueError, match="unknown initializer 'xavier'; expected one of: zeros"):
        initializers.get("xavier")


def test_registry_lists_the_keras_names() -> None:
    assert set(INITIALIZERS) == {
        "zeros", "ones", "constant", "random_uniform", "random_normal", "glorot_uniform",
        "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
    }  # fmt: skip
    for name, spec in INITIALIZERS.items():
        built = initializers.get(name)
        assert built.name == name and spec.description
        assert built.get_config() == spec.defaults()
    init = initializers.get("ones")
    assert initializers.get(init) is init
