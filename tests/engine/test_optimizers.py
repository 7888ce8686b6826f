"""Optimizers: two steps checked against each formula worked out by hand in plain floats.

Each test changes the learning rate between the two steps, so it also checks that the state
survives the change. Independent golds: scalar arithmetic written out here, and the worked
examples in Keras/TensorFlow's own documentation.
"""

import math

import numpy as np
import pytest

from app.engine import optimizers
from app.engine.optimizers import OPTIMIZERS, SGD, Adagrad, Adam, RMSprop

KEY = "layers.0.kernel"
G1 = [0.5, -2.0]
G2 = [-1.0, 0.25]
W0 = [1.0, -0.5]
LR1, LR2 = 0.1, 0.05


def two_steps(opt: optimizers.Optimizer) -> tuple[list[float], list[float]]:
    """Apply G1 at LR1, then G2 at LR2, to W0; return the weights after each step."""
    w = np.array(W0)
    params = {KEY: w}
    opt.learning_rate = LR1
    opt.apply_gradients(params, {KEY: np.array(G1)})
    after_1 = w.tolist()
    opt.learning_rate = LR2
    opt.apply_gradients(params, {KEY: np.array(G2)})
    assert params[KEY] is w  # updated in place
    assert opt.iterations == 2
    return after_1, w.tolist()


def test_sgd_plain() -> None:
    after_1, after_2 = two_steps(SGD())
    expected_1 = [W0[i] - LR1 * G1[i] for i in range(2)]
    expected_2 = [expected_1[i] - LR2 * G2[i] for i in range(2)]
    assert after_1 == pytest.approx(expected_1, rel=1e-15)
    assert after_2 == pytest.approx(expected_2, rel=1e-15)


def test_sgd_momentum() -> None:
    opt = SGD(momentum=0.9)
    after_1, after_2 = two_steps(opt)
    # velocity = momentum * velocity - lr * g; w = w + velocity
    v1 = [0.9 * 0.0 - LR1 * G1[i] for i in range(2)]
    w1 = [W0[i] + v1[i] for i in range(2)]
    v2 = [0.9 * v1[i] - LR2 * G2[i] for i in range(2)]
    w2 = [w1[i] + v2[i] for i in range(2)]
    assert after_1 == pytest.approx(w1, rel=1e-15)
    assert after_2 == pytest.approx(w2, rel=1e-15)
    assert opt.state[KEY]["velocity"].tolist() == pytest.approx(v2, rel=1e-15)
    # The first element by hand: v1 = -0.05, w1 = 0.95; v2 = -0.045 + 0.05 = 0.005, w2 = 0.955.
    assert after_2[0] == pytest.approx(0.955, rel=1e-14)


def test_sgd_nesterov() -> None:
    after_1, after_2 = two_steps(SGD(momentum=0.9, nesterov=True))
    v1 = [-LR1 * G1[i] for i in range(2)]
    w1 = [W0[i] + 0.9 * v1[i] - LR1 * G1[i] for i in range(2)]
    v2 = [0.9 * v1[i] - LR2 * G2[i] for i in range(2)]
    w2 = [w1[i] + 0.9 * v2[i] - LR2 * G2[i] for i in range(2)]
    assert after_1 == pytest.approx(w1, rel=1e-15)
    assert after_2 == pytest.approx(w2, rel=1e-15)


def test_adagrad() -> None:
    opt = Adagrad(initial_accumulator_value=0.1, epsilon=1e-7)
    after_1, after_2 = two_steps(opt)
    s1 = [0.1 + G1[i] ** 2 for i in range(2)]
    w1 = [W0[i] - LR1 * G1[i] / math.sqrt(s1[i] + 1e-7) for i in range(2)]
    s2 = [s1[i] + G2[i] ** 2 for i in range(2)]
    w2 = [w1[i] - LR2 * G2[i] / math.sqrt(s2[i] + 1e-7) for i in range(2)]
    assert after_1 == pytest.approx(w1, rel=1e-14)
    assert after_2 == pytest.approx(w2, rel=1e-14)
    assert opt.state[KEY]["accumulator"].tolist() == pytest.approx(s2, rel=1e-15)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(momentum: float) -> None:
    opt = RMSprop(rho=0.9, momentum=momentum, epsilon=1e-7)
    after_1, after_2 = two_steps(opt)
    s1 = [0.9 * 0.0 + 0.1 * G1[i] ** 2 for i in range(2)]
    inc1 = [LR1 * G1[i] / math.sqrt(s1[i] + 1e-7) for i in range(2)]
    m1 = [momentum * 0.0 + inc1[i] for i in range(2)] if momentum else inc1
    w1 = [W0[i] - m1[i] for i in range(2)]
    s2 = [0.9 * s1[i] + 0.1 * G2[i] ** 2 for i in range(2)]
    inc2 = [LR2 * G2[i] / math.sqrt(s2[i] + 1e-7) for i in range(2)]
    m2 = [momentum * m1[i] + inc2[i] for i in range(2)] if momentum else inc2
    w2 = [w1[i] - m2[i] for i in range(2)]
    assert after_1 == pytest.approx(w1, rel=1e-14)
    assert after_2 == pytest.approx(w2, rel=1e-14)
    assert opt.state[KEY]["accumulator"].tolist() == pytest.approx(s2, rel=1e-15)
    assert ("momentum" in opt.state[KEY]) == bool(momentum)


def test_adam() -> None:
    b1, b2, eps = 0.9, 0.999, 1e-7
    opt = Adam(beta_1=b1, beta_2=b2, epsilon=eps)
    after_1, after_2 = two_steps(opt)
    # Keras: alpha_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= alpha_t m / (sqrt(v) + eps).
    m1 = [(1 - b1) * G1[i] for i in range(2)]
    v1 = [(1 - b2) * G1[i] ** 2 for i in range(2)]
    a1 = LR1 * math.sqrt(1 - b2**1) / (1 - b1**1)
    w1 = [W0[i] - a1 * m1[i] / (math.sqrt(v1[i]) + eps) for i in range(2)]
    m2 = [b1 * m1[i] + (1 - b1) * G2[i] for i in range(2)]
    v2 = [b2 * v1[i] + (1 - b2) * G2[i] ** 2 for i in range(2)]
    a2 = LR2 * math.sqrt(1 - b2**2) / (1 - b1**2)
    w2 = [w1[i] - a2 * m2[i] / (math.sqrt(v2[i]) + eps) for i in range(2)]
    assert after_1 == pytest.approx(w1, rel=1e-13)
    assert after_2 == pytest.approx(w2, rel=1e-13)
    assert opt.state[KEY]["m"].tolist() == pytest.approx(m2, rel=1e-14)
    assert opt.state[KEY]["v"].tolist() == pytest.approx(v2, rel=1e-14)


# ---- the worked examples of Keras's / TensorFlow's documentation ----


def minimise_half_square(opt: optimizers.Optimizer, start: float, steps: int) -> list[float]:
    """Steps on loss = var^2 / 2 (gradient = var); the value after each step."""
    var = np.array([start])
    values = []
    for _ in range(steps):
        opt.apply_gradients({"var": var}, {"var": var.copy()})
        values.append(float(var[0]))
    return values


def test_documented_examples() -> None:
    # keras.optimizers.RMSprop(learning_rate=0.1), var 10 -> 9.683772.
    assert minimise_half_square(RMSprop(learning_rate=0.1), 10.0, 1)[0] == pytest.approx(
        9.683772, abs=1e-6
    )
    # tf.keras.optimizers.SGD(learning_rate=0.1, momentum=0.9), var 1: steps of 0.1, then 0.18.
    v1, v2 = minimise_half_square(SGD(learning_rate=0.1, momentum=0.9), 1.0, 2)
    assert 1.0 - v1 == pytest.approx(0.1, rel=1e-12)
    assert v1 - v2 == pytest.approx(0.18, rel=1e-12)
    # tf.keras.optimizers.Adam(learning_rate=0.1), var 10 -> 9.9: Adam's first step is ~lr.
    assert minimise_half_square(Adam(learning_rate=0.1), 10.0, 1)[0] == pytest.approx(9.9, abs=1e-6)


# ---- state, trace, config ----


def test_state_is_lazy_and_keyed_by_parameter_name() -> None:
    opt = optimizers.get("momentum")
    assert opt.state == {}
    params = {KEY: np.zeros((2, 3)), "layers.0.bias": np.zeros(3)}
    grads = {KEY: np.ones((2, 3)), "layers.0.bias": np.ones(3)}
    opt.apply_gradients(params, grads)
    assert set(opt.state) == {KEY, "layers.0.bias"}
    assert opt.state[KEY]["velocity"].shape == (2, 3)


def test_trace_reports_update_and_bias_corrected_moments() -> None:
    opt = Adam(learning_rate=0.01)
    w = np.array([0.3, -0.7])
    g = np.array([0.2, -4.0])
    before = w.copy()
    opt.apply_gradients({KEY: w}, {KEY: g})
    trace = opt.trace()[KEY]
    np.testing.assert_allclose(trace["update"], w - before, rtol=1e-12)
    # After one step the bias-corrected moments are the gradient and its square.
    np.testing.assert_allclose(trace["m_hat"], g, rtol=1e-12)
    np.testing.assert_allclose(trace["v_hat"], g**2, rtol=1e-12)
    # A snapshot: later steps change the optimizer's state, not the trace already taken.
    update_1, m_1 = trace["update"].copy(), trace["m"].copy()
    opt.apply_gradients({KEY: w}, {KEY: g})
    np.testing.assert_array_equal(trace["update"], update_1)
    np.testing.assert_array_equal(trace["m"], m_1)
    assert not np.array_equal(opt.trace()[KEY]["m"], m_1)


def test_trace_of_accumulator_methods_shows_the_effective_rate() -> None:
    for opt in (Adagrad(learning_rate=0.1), RMSprop(learning_rate=0.1)):
        w = np.array([1.0])
        opt.apply_gradients({KEY: w}, {KEY: np.array([2.0])})
        entry = opt.trace()[KEY]
        assert entry["effective_learning_rate"][0] == pytest.approx(
            0.1 / math.sqrt(entry["accumulator"][0] + 1e-7), rel=1e-15
        )
        assert entry["update"][0] == pytest.approx(-entry["effective_learning_rate"][0] * 2.0)


def test_get_config_round_trips() -> None:
    for name in OPTIMIZERS:
        opt = optimizers.get(name, learning_rate=0.2)
        config = opt.get_config()
        assert config["learning_rate"] == 0.2
        rest = {k: v for k, v in config.items() if k != "name"}
        assert optimizers.get(str(config["name"]), **rest).get_config() == config


def test_registry_defaults_are_keras_defaults() -> None:
    assert OPTIMIZERS["sgd"].defaults() == {
        "learning_rate": 0.01, "momentum": 0.0, "nesterov": False,
    }  # fmt: skip
    assert OPTIMIZERS["momentum"].defaults()["momentum"] == 0.9
    assert OPTIMIZERS["adagrad"].defaults() == {
        "learning_rate": 0.001, "initial_accumulator_value": 0.1, "epsilon": 1e-7,
    }  # fmt: skip
    assert OPTIMIZERS["rmsprop"].defaults() == {
        "learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
    }  # fmt: skip
    assert OPTIMIZERS["adam"].defaults() == {
        "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
    }  # fmt: skip
    momentum = optimizers.get("momentum", learning_rate=0.1)
    assert isinstance(momentum, SGD) and momentum.momentum == 0.9
    for name in OPTIMIZERS:
        assert optimizers.get(name).get_config() == {
            "name": "sgd" if name == "momentum" else name,
            **OPTIMIZERS[name].defaults(),
        }


# ---- bad input ----


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("sgd", {"learning_rate": -0.1}, r"learning_rate=-0\.1 is out of range; expected 0 <="),
        ("sgd", {"learning_rate": float("nan")}, "learning_rate=nan is not finite"),
        ("sgd", {"momentum": 1.5}, r"momentum=1\.5 is out of range"),
        ("sgd", {"nesterov": "yes"}, "nesterov='yes' is not a boolean"),
        ("adam", {"beta_1": 1.0}, r"beta_1=1\.0 is out of range; expected 0 <= beta_1 < 1"),
        ("adam", {"epsilon": 0.0}, r"epsilon=0\.0 is out of range; expected 0 < epsilon"),
        ("adagrad", {"initial_accumulator_value": -1.0}, "initial_accumulator_value=-1.0 is"),
        ("rmsprop", {"rho": -0.5}, r"rho=-0\.5 is out of range"),
        ("adam", {"amsgrad": True}, "unknown parameter 'amsgrad'"),
    ],
)
def test_bad_parameters_name_the_value(name: str, params: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        optimizers.get(name, **params)


def test_unknown_optimizer() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; expected one of: sgd, "):
        optimizers.get("adamw")


def test_learning_rate_setter_validates_and_keeps_the_old_value() -> None:
    opt = SGD(learning_rate=0.5)
    with pytest.raises(ValueError, match=r"learning_rate=-1\.0 is out of range"):
        opt.learning_rate = -1.0
    assert opt.learning_rate == 0.5
    with pytest.raises(ValueError, match=r"learning_rate=-1\.0 is out of range"):
        Adam(learning_rate=-1.0)


def test_bad_gradients_are_refused() -> None:
    opt = SGD()
    params = {KEY: np.zeros((2, 2))}
    with pytest.raises(ValueError, match="gradient 'other' has no parameter; expected one of"):
        opt.apply_gradients(params, {"other": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"gradient '.*' has shape \(2,\) but the parameter has"):
        opt.apply_gradients(params, {KEY: np.zeros(2)})
    with pytest.raises(ValueError, match="must be a float64 numpy array"):
        opt.apply_gradients({KEY: np.zeros(2, dtype=np.int64)}, {KEY: np.zeros(2)})
