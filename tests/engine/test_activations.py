"""Activations against central finite differences, hand values and saturated inputs."""

import math

import numpy as np
import numpy.typing as npt
import pytest

from app.engine import activations
from app.engine.activations import ACTIVATIONS, ActivationFunction

Array = npt.NDArray[np.float64]

H = 1e-6
SMOOTH = ["linear", "sigmoid", "tanh", "elu"]
KINKED = ["relu", "leaky_relu"]  # differentiable away from z = 0


def relative_error(analytic: Array, numeric: Array) -> float:
    """||a - n|| / (||a|| + ||n||), 0 when both vanish."""
    scale = float(np.linalg.norm(analytic) + np.linalg.norm(numeric))
    return 0.0 if scale == 0.0 else float(np.linalg.norm(analytic - numeric)) / scale


def numeric_backward(act: ActivationFunction, z: Array, da: Array) -> Array:
    """Central differences of L(z) = sum(da * f(z)), one coordinate at a time."""
    dz = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += H
        minus[index] -= H
        dz[index] = (np.sum(da * act.fn(plus)) - np.sum(da * act.fn(minus))) / (2 * H)
    return dz


def away_from_zero(z: Array) -> Array:
    """Move points off the kink so finite differences never straddle it."""
    return np.where(np.abs(z) < 0.05, z + np.sign(z + 1e-12) * 0.1, z)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", SMOOTH + KINKED)
def test_grad_and_backward_match_finite_differences(name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(1, 5)))
    z = away_from_zero(rng.normal(0.0, 2.0, shape))
    da = rng.normal(size=shape)
    act = activations.get(name)
    a = act.fn(z)
    numeric = numeric_backward(act, z, da)
    assert relative_error(act.backward(z, a, da), numeric) <= 1e-6
    # Elementwise: backward is da * grad, so grad alone must agree too.
    assert relative_error(da * act.grad(z, a), numeric) <= 1e-6


@pytest.mark.parametrize("params", [{"alpha": 0.3}, {"alpha": 0.0}, {"alpha": 1.0}])
def test_parameterised_leaky_relu_gradient(params: dict[str, float]) -> None:
    rng = np.random.default_rng(7)
    z = away_from_zero(rng.normal(size=(4, 3)))
    da = rng.normal(size=(4, 3))
    act = activations.get("leaky_relu", **params)
    numeric = numeric_backward(act, z, da)
    assert relative_error(act.backward(z, act.fn(z), da), numeric) <= 1e-6


def test_elu_with_alpha_gradient() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(size=(5, 2))
    da = rng.normal(size=(5, 2))
    act = activations.get("elu", alpha=2.5)
    numeric = numeric_backward(act, z, da)
    assert relative_error(act.backward(z, act.fn(z), da), numeric) <= 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_softmax_backward_applies_the_jacobian(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 6)), int(rng.integers(2, 6)))
    z = rng.normal(0.0, 3.0, shape)
    da = rng.normal(size=shape)
    act = activations.get("softmax")
    numeric = numeric_backward(act, z, da)
    assert relative_error(act.backward(z, act.fn(z), da), numeric) <= 1e-6


def test_hand_values() -> None:
    z = np.array([[-2.0, -1.0, 0.0, 1.5]])
    np.testing.assert_allclose(activations.get("linear").fn(z), z)
    np.testing.assert_allclose(
        activations.get("sigmoid").fn(z),
        [[1 / (1 + math.e**2), 1 / (1 + math.e), 0.5, 1 / (1 + math.exp(-1.5))]],
        rtol=1e-15,
    )
    np.testing.assert_allclose(activations.get("tanh").fn(z), [[math.tanh(v) for v in z[0]]])
    np.testing.assert_array_equal(activations.get("relu").fn(z), [[0.0, 0.0, 0.0, 1.5]])
    # The lecture's leaky ReLU: max(0.01 z, z).
    np.testing.assert_allclose(activations.get("leaky_relu").fn(z), [[-0.02, -0.01, 0.0, 1.5]])
    np.testing.assert_allclose(
        activations.get("elu").fn(z), [[math.exp(-2) - 1, math.exp(-1) - 1, 0.0, 1.5]]
    )
    np.testing.assert_allclose(
        activations.get("elu", alpha=0.5).fn(z),
        [[0.5 * (math.exp(-2) - 1), 0.5 * (math.exp(-1) - 1), 0.0, 1.5]],
    )
    e = [math.exp(v) for v in z[0]]
    np.testing.assert_allclose(
        activations.get("softmax").fn(z), [[v / sum(e) for v in e]], rtol=1e-14
    )


def test_step_is_the_lectures_ltu() -> None:
    # The slide's XOR network: hidden sums -1.5, -0.5, 0.5, 1.5 and output sums +-0.5.
    step = activations.get("step")
    out = step.fn(np.array([[-1.5, -0.5], [-0.5, 0.5], [0.5, 1.5], [0.0, -1e-300]]))
    np.testing.assert_array_equal(out, [[0, 0], [0, 1], [1, 1], [1, 0]])


def test_step_refuses_to_give_a_gradient() -> None:
    step = activations.get("step")
    z = np.array([[0.3, -0.2]])
    with pytest.raises(ValueError, match="step function has no useful gradient"):
        step.grad(z, step.fn(z))
    with pytest.raises(ValueError, match="step function has no useful gradient"):
        step.backward(z, step.fn(z), np.ones_like(z))


def test_saturated_inputs_stay_finite_and_exact() -> None:
    z = np.array([[-1000.0, -40.0, 40.0, 1000.0]])
    a = activations.get("sigmoid").fn(z)
    assert np.all(np.isfinite(a))
    assert a[0, 0] == 0.0 and a[0, 3] == 1.0
    # Very negative inputs keep full relative precision: sigmoid(-40) = e^-40 / (1 + e^-40).
    assert a[0, 1] == pytest.approx(math.exp(-40) / (1 + math.exp(-40)), rel=1e-14)
    assert np.all(np.isfinite(activations.get("sigmoid").grad(z, a)))
    elu = activations.get("elu")
    np.testing.assert_array_equal(elu.fn(z), [[-1.0, math.expm1(-40), 40.0, 1000.0]])
    soft = activations.get("softmax")
    s = soft.fn(np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]]))
    assert np.all(np.isfinite(s))
    np.testing.assert_allclose(s, [[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-300)
    np.testing.assert_allclose(s.sum(axis=1), [1.0, 1.0])


def test_linear_returns_a_copy() -> None:
    z = np.array([[1.0, 2.0]])
    a = activations.get("linear").fn(z)
    a += 1.0
    np.testing.assert_array_equal(z, [[1.0, 2.0]])


def test_none_is_linear_as_keras() -> None:
    assert activations.get(None).name == "linear"


def test_instances_pass_through() -> None:
    act = activations.get("elu", alpha=0.5)
    assert activations.get(act) is act
    with pytest.raises(ValueError, match="already built"):
        activations.get(act, alpha=1.0)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'foo'; expected one of: step, "):
        activations.get("foo")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"alpha": -0.5}, "alpha=-0.5 is out of range; expected 0 <= alpha <= 1"),
        ({"alpha": float("nan")}, "alpha=nan is not finite"),
        ({"alpha": float("inf")}, "alpha=inf is not finite"),
        ({"alpha": "big"}, "alpha='big' is not a number"),
        ({"alpha": True}, "alpha=True is not a number"),
        ({"slope": 0.1}, "unknown parameter 'slope'; expected alpha"),
    ],
)
def test_bad_parameters_name_the_value(params: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=f"activation 'leaky_relu': {fragment}"):
        activations.get("leaky_relu", **params)


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValueError, match=r"alpha=-1\.0 is out of range"):
        activations.ELU(alpha=-1.0)


def test_stateless_entries_have_no_parameters_they_do_not_take() -> None:
    with pytest.raises(ValueError, match="unknown parameter 'alpha'; expected no parameters"):
        activations.get("relu", alpha=0.1)


def test_registry_describes_every_activation() -> None:
    expected = {
        "step",
        "linear",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "rrelu",
        "prelu",
        "softmax",
    }
    assert set(ACTIVATIONS) == expected
    for name, spec in ACTIVATIONS.items():
        assert spec.name == name and spec.description
        for param in spec.params:
            assert param.check(param.default, name) == param.default
        if spec.stateful:
            continue
        built = activations.get(name)
        assert built.name == name
        assert built.get_config() == spec.defaults()


def test_stateful_entries_describe_layers() -> None:
    assert ACTIVATIONS["rrelu"].stateful and ACTIVATIONS["prelu"].stateful
    assert ACTIVATIONS["rrelu"].defaults() == {"lower": 1 / 8, "upper": 1 / 3}
    assert ACTIVATIONS["prelu"].defaults() == {"alpha_initializer": 0.25}
    with pytest.raises(ValueError, match="'prelu' has state and is built as a layer"):
        activations.get("prelu")
    with pytest.raises(ValueError, match=r"lower=-0\.1 is out of range"):
        activations.get("rrelu", lower=-0.1)


def test_registry_is_json_ready() -> None:
    described = ACTIVATIONS["leaky_relu"].to_dict()
    assert described["params"][0] == {
        "name": "alpha",
        "kind": "float",
        "default": 0.01,
        "min": 0.0,
        "max": 1.0,
        "min_exclusive": False,
        "max_exclusive": False,
        "description": "slope for z < 0",
    }
