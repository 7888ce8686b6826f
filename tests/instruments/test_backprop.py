"""Backprop trace: the slide's numbers, numeric gradients, optimizer state by hand, no effect."""

import math

import numpy as np
import pytest

from app.engine import BatchNormalization, Dense, Dropout, Input, Sequential, optimizers
from app.engine.layers import Activation
from app.instruments.backprop import lecture_example, lecture_model, trace_model

# The lecture's slides, "Backpropagation - Forward Pass" to "Hidden Layer (6/8)", as printed.
SLIDE = {
    "net_h1": 0.3775,
    "out_h1": 0.59327,
    "out_h2": 0.59688,
    "net_o1": 1.1059,
    "out_o1": 0.75136,
    "out_o2": 0.77292,
    "E_o1": 0.27481,
    "E_o2": 0.02356,
    "E_total": 0.29837,
    "dE/dout_o1": 0.74136,
    "dout_o1/dnet_o1": 0.18681,
    "dE/dw5": 0.08216,
    "w5'": 0.35891,
    "w6'": 0.40866,
    "w7'": 0.5113,
    "w8'": 0.56137,
    "dE_o1/dout_h1": 0.0554,
    "dE_o2/dout_h1": -0.01905,
    "dE/dout_h1": 0.03635,
    "dout_h1/dnet_h1": 0.2413,
    "w1'": 0.14978,
    "w2'": 0.19956,
    "w3'": 0.24975,
    "w4'": 0.2995,
}


def test_lecture_example_reproduces_the_slides_to_five_decimals() -> None:
    example = lecture_example()
    values = {q.symbol: q.value for phase in example.phases for q in phase.quantities}
    for symbol, printed in SLIDE.items():
        # The slides round (and sometimes truncate) at the 5th decimal: agree within 1e-5.
        assert abs(values[symbol] - printed) <= 1e-5, (symbol, values[symbol], printed)


def test_lecture_example_phases_come_in_the_slides_order() -> None:
    example = lecture_example()
    assert [p.id for p in example.phases] == [
        "forward", "error", "output_deltas", "hidden_deltas", "gradients", "new_weights",
    ]
    assert example.inputs == [0.05, 0.1]
    assert example.targets == [0.01, 0.99]
    assert example.learning_rate == 0.5


def test_lecture_example_gradient_check_passes() -> None:
    check = lecture_example().trace.gradient_check
    assert check is not None and check.passed
    assert check.max_abs_difference < 1e-9


def mixed_model(seed: int = 3) -> Sequential:
    """A net exercising every layer kind with parameters: BN, dropout, L2, leaky ReLU, softmax."""
    model = Sequential(
        [
            Input(shape=(3,)),
            Dense(5, activation="tanh", kernel_regularizer="l2"),
            Dense(4),
            BatchNormalization(),
            Activation("elu"),
            Dropout(0.3),
            Dense(4, activation="leaky_relu"),
            Dense(3, activation="softmax"),
        ],
        seed=seed,
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(6, 3)), rng.integers(0, 3, size=6).astype(np.float64)


@pytest.mark.parametrize("training", [True, False])
def test_numeric_gradient_agrees_with_backprop(training: bool) -> None:
    x, y = batch()
    trace = trace_model(mixed_model(), x, y, training=training)
    assert trace.gradient_check is not None
    for parameter in trace.parameters:
        analytic = np.asarray(parameter.gradient)
        numeric = np.asarray(parameter.numeric_gradient)
        assert np.allclose(analytic, numeric, rtol=1e-5, atol=1e-7), (
            parameter.name, analytic, numeric
        )
    assert trace.gradient_check.passed


def test_trace_leaves_the_model_exactly_as_it_was() -> None:
    x, y = batch()
    model = mixed_model()
    model.train_on_batch(x, y)
    weights = model.get_weights()
    assert model.optimizer is not None
    state = {k: {s: v.copy() for s, v in d.items()} for k, d in model.optimizer.state.items()}
    noise = model.noise_rng.bit_generator.state
    order = model.order_rng.bit_generator.state
    trace_model(model, x, y)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    assert model.optimizer is not None and model.optimizer.iterations == 1
    for key, slots in state.items():
        for slot, value in slots.items():
            assert np.array_equal(model.optimizer.state[key][slot], value)
    assert model.noise_rng.bit_generator.state == noise
    assert model.order_rng.bit_generator.state == order


def test_new_values_are_what_a_real_training_step_gives() -> None:
    x, y = batch(1)
    model = mixed_model()
    trace = trace_model(model, x, y, training=True, numeric=False)
    model.train_on_batch(x, y)
    for parameter, after in zip(trace.parameters, model.parameters().values(), strict=True):
        assert np.allclose(parameter.new_value, after, rtol=0, atol=1e-15), parameter.name


def test_adam_state_matches_a_hand_computed_step() -> None:
    lr, beta_1, beta_2, eps = 0.1, 0.9, 0.999, 1e-7
    model = lecture_model()
    model.compile(optimizers.get("adam", learning_rate=lr), loss="mse")
    x, y = np.array([[0.05, 0.1]]), np.array([[0.01, 0.99]])
    first = trace_model(model, x, y, numeric=False)
    model.train_on_batch(x, y)
    second = trace_model(model, x, y, numeric=False)
    for p1, p2 in zip(first.parameters, second.parameters, strict=True):
        g1, g2 = np.asarray(p1.gradient), np.asarray(p2.gradient)
        # The lecture's Adam, steps 1-5, from m = s = 0 (Keras puts epsilon outside the root).
        m1, s1 = (1 - beta_1) * g1, (1 - beta_2) * g1**2
        assert np.allclose(p2.state_before["m"], m1, rtol=1e-12, atol=0)
        assert np.allclose(p2.state_before["v"], s1, rtol=1e-12, atol=0)
        m2 = beta_1 * m1 + (1 - beta_1) * g2
        s2 = beta_2 * s1 + (1 - beta_2) * g2**2
        m_hat, s_hat = m2 / (1 - beta_1**2), s2 / (1 - beta_2**2)
        assert np.allclose(p2.state_after["m"], m2, rtol=1e-12, atol=0)
        assert np.allclose(p2.state_after["v"], s2, rtol=1e-12, atol=0)
        assert np.allclose(p2.state_after["m_hat"], m_hat, rtol=1e-12, atol=0)
        assert np.allclose(p2.state_after["v_hat"], s_hat, rtol=1e-12, atol=0)
        expected_update = -lr * m_hat / (np.sqrt(s_hat) + eps / math.sqrt(1 - beta_2**2))
        assert np.allclose(p2.update, expected_update, rtol=1e-9, atol=0)


def test_momentum_velocity_matches_a_hand_computed_step() -> None:
    lr, beta = 0.5, 0.9
    model = lecture_model()
    model.compile(optimizers.get("momentum", learning_rate=lr), loss="mse")
    x, y = np.array([[0.05, 0.1]]), np.array([[0.01, 0.99]])
    first = trace_model(model, x, y, numeric=False)
    g1 = {p.name: np.asarray(p.gradient) for p in first.parameters}
    model.train_on_batch(x, y)
    second = trace_model(model, x, y, numeric=False)
    for parameter in second.parameters:
        g2 = np.asarray(parameter.gradient)
        # The lecture's m = beta m + eta g, w <- w - m; Keras's velocity is -m.
        m1 = lr * g1[parameter.name]
        m2 = beta * m1 + lr * g2
        assert np.allclose(parameter.state_before["velocity"], -m1, rtol=1e-12, atol=0)
        assert np.allclose(parameter.state_after["velocity"], -m2, rtol=1e-12, atol=0)
        assert np.allclose(parameter.update, -m2, rtol=1e-12, atol=0)
        assert np.allclose(
            parameter.new_value, np.asarray(parameter.value) - m2, rtol=1e-12, atol=0
        )


def test_per_layer_grad_norms_match_the_gradients() -> None:
    x, y = batch()
    trace = trace_model(mixed_model(), x, y, numeric=False)
    by_name = {p.name: np.asarray(p.gradient) for p in trace.parameters}
    for layer in trace.layers:
        own = [g for name, g in by_name.items() if name.startswith(f"layers.{layer.index}.")]
        if not own:
            assert layer.grad_norm is None
        else:
            assert layer.grad_norm == pytest.approx(
                math.sqrt(sum(float(np.sum(g * g)) for g in own)), rel=1e-12
            )


def test_a_wrong_gradient_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    original = Sequential.trace

    def doubled(self: Sequential, x: object, y: object, training: bool = False) -> object:
        # A backprop bug: every gradient twice too large (the loss itself stays right).
        result = original(self, x, y, training)  # type: ignore[arg-type]
        for grad in result.gradients.values():
            grad *= 2.0
        return result

    monkeypatch.setattr(Sequential, "trace", doubled)
    x, y = batch()
    check = trace_model(mixed_model(), x, y).gradient_check
    assert check is not None and not check.passed
    assert check.max_relative_difference == pytest.approx(1 / 3, rel=1e-3)  # |2g - g| / 3|g|


def test_a_diverged_net_is_traced_without_warnings() -> None:
    model = Sequential([Input(shape=(2,)), Dense(3, activation="relu"), Dense(1)], seed=0)
    model.compile(optimizer="sgd", loss="mse")
    model.parameters()["layers.0.kernel"][...] = 1e200  # a net that has blown up
    x, y = np.array([[1.0, 2.0]]), np.array([[0.5]])
    trace = trace_model(model, x, y)  # the squared error overflows: warnings are errors here
    assert trace.loss == math.inf
    assert trace.gradient_check is not None and not trace.gradient_check.passed
