"""Layers: whole-model gradients against central finite differences, and train/inference semantics.

Gold: central differences of the model's training objective (data loss + penalties) with
respect to every parameter entry, float64, step 1e-5, norm-wise relative error <= 1e-6.
`Sequential.trace(training=True)` rewinds the model's noise generator after each call, so every
evaluation draws the same dropout mask and RReLU slopes: the objective is a fixed function.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.engine import (
    Activation,
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    PReLU,
    RReLU,
    Sequential,
    regularizers,
)
from app.engine.layers import Layer

STEP = 1e-5
# The differences themselves carry ~1e-11 of rounding (1e-16 / STEP), so a gradient whose
# norm is below this floor is compared absolutely, to 1e-6 * 1e-4 = 1e-10.
SCALE_FLOOR = 1e-4
TOLERANCE = 1e-6
SEEDS = (0, 1, 2)


def _objective(model: Sequential, x: np.ndarray, y: np.ndarray, training: bool) -> float:
    trace = model.trace(x, y, training=training)
    return trace.loss + trace.penalty


def assert_gradients_match(
    model: Sequential, x: np.ndarray, y: np.ndarray, training: bool = True
) -> None:
    """Every parameter's analytic gradient equals the central difference of the objective."""
    analytic = model.trace(x, y, training=training).gradients
    params = model.parameters()
    assert set(analytic) == set(params)
    for key, param in params.items():
        numeric = np.zeros_like(param)
        for index in np.ndindex(param.shape):
            original = param[index]
            param[index] = original + STEP
            plus = _objective(model, x, y, training)
            param[index] = original - STEP
            minus = _objective(model, x, y, training)
            param[index] = original
            numeric[index] = (plus - minus) / (2 * STEP)
        difference = np.linalg.norm(analytic[key] - numeric)
        scale = max(np.linalg.norm(analytic[key]) + np.linalg.norm(numeric), SCALE_FLOOR)
        assert difference / scale <= TOLERANCE, (
            f"{key}: relative error {difference / scale:.3g}\n"
            f"analytic:\n{analytic[key]}\nnumeric:\n{numeric}"
        )


def _shapes(seed: int) -> tuple[np.random.Generator, int, int, int, int]:
    """A seeded random (batch, inputs, hidden, outputs) for the check."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(3, 9))
    n_in = int(rng.integers(1, 5))
    hidden = int(rng.integers(2, 6))
    n_out = int(rng.integers(1, 4))
    return rng, n, n_in, hidden, n_out


def _regression_check(seed: int, hidden_layers: list[Layer], loss: str = "mse") -> None:
    rng, n, n_in, _, n_out = _shapes(seed)
    model = Sequential([Input((n_in,)), *hidden_layers, Dense(n_out)], seed=seed)
    model.compile("sgd", loss)
    x = rng.normal(size=(n, n_in))
    y = rng.normal(size=(n, n_out))
    assert_gradients_match(model, x, y)


HIDDEN_ACTIVATIONS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_dense_gradients_for_every_activation(activation: str, seed: int) -> None:
    hidden = _shapes(seed)[3]
    _regression_check(seed, [Dense(hidden, activation), Dense(hidden, activation)])


@pytest.mark.parametrize("seed", SEEDS)
def test_activation_layer_and_no_bias_gradients(seed: int) -> None:
    hidden = _shapes(seed)[3]
    _regression_check(seed, [Dense(hidden, use_bias=False), Activation("tanh")])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "output, loss",
    [
        ("linear", "mse"),
        ("sigmoid", "mse"),
        ("sigmoid", "binary_crossentropy"),
        ("softmax", "categorical_crossentropy"),
        ("softmax", "sparse_categorical_crossentropy"),
        ("softmax-layer", "sparse_categorical_crossentropy"),
        ("sigmoid-layer", "binary_crossentropy"),
    ],
)
def test_gradients_for_every_loss(output: str, loss: str, seed: int) -> None:
    rng, n, n_in, hidden, n_out = _shapes(seed)
    classes = n_out + 1  # at least 2 for the softmax outputs
    units = classes if output.startswith("softmax") else n_out
    if output.endswith("-layer"):
        head = [Dense(units), Activation(output.removesuffix("-layer"))]
    else:
        head = [Dense(units, output)]
    model = Sequential([Input((n_in,)), Dense(hidden, "tanh"), *head], seed=seed)
    model.compile("sgd", loss)
    x = rng.normal(size=(n, n_in))
    if loss == "mse":
        y = rng.normal(size=(n, units))
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(n, units)).astype(float)
    elif loss == "categorical_crossentropy":
        y = np.eye(classes)[rng.integers(0, classes, size=n)]
    else:
        y = rng.integers(0, classes, size=n).astype(float)
    assert_gradients_match(model, x, y)


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_gradients_with_a_fixed_mask(seed: int) -> None:
    hidden = _shapes(seed)[3] + 3
    _regression_check(seed, [Dense(hidden, "tanh"), Dropout(0.4), Dense(hidden, "relu")])


@pytest.mark.parametrize("seed", SEEDS)
def test_batch_normalization_gradients_in_training_mode(seed: int) -> None:
    hidden = _shapes(seed)[3]
    layers: list[Layer] = [Dense(hidden), BatchNormalization(), Activation("tanh")]
    rng, n, n_in, _, n_out = _shapes(seed)
    model = Sequential([Input((n_in,)), *layers, Dense(n_out)], seed=seed)
    model.compile("sgd", "mse")
    # gamma = 1, beta = 0 at first: move them so their gradients are checked off the identity.
    model.set_weights(
        [
            w if i not in (2, 3) else w + rng.normal(size=w.shape)
            for i, w in enumerate(model.get_weights())
        ]
    )
    assert_gradients_match(model, rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out)))


@pytest.mark.parametrize("seed", SEEDS)
def test_inference_mode_gradients_through_moving_statistics_and_mean_slopes(seed: int) -> None:
    rng, n, n_in, hidden, n_out = _shapes(seed)
    model = Sequential(
        [
            Input((n_in,)),
            Dense(hidden + 2),
            BatchNormalization(),
            RReLU(),
            Dropout(0.5),
            Dense(n_out),
        ],
        seed=seed,
    )
    model.compile("sgd", "mse")
    bn = model.layers[1]
    # Moving statistics away from (0, 1), gamma and beta away from (1, 0).
    for store in (bn.params, bn.state):
        for key, array in store.items():
            array[...] = rng.uniform(0.5, 2.0, size=array.shape) * (1 if key != "beta" else -1)
    x, y = rng.normal(size=(n, n_in)), rng.normal(size=(n, n_out))
    assert_gradients_match(model, x, y, training=False)


@pytest.mark.parametrize("seed", SEEDS)
def test_prelu_gradients_including_alpha(seed: int) -> None:
    hidden = _shapes(seed)[3] + 2
    _regression_check(seed, [Dense(hidden), PReLU(), Dense(hidden, "prelu")])


@pytest.mark.parametrize("seed", SEEDS)
def test_rrelu_gradients_with_a_fixed_slope_draw(seed: int) -> None:
    hidden = _shapes(seed)[3] + 2
    _regression_check(seed, [Dense(hidden), RReLU(), Dense(hidden, "rrelu")])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kernel_regularizer",
    [
        regularizers.get("l1", l1=0.1),
        regularizers.get("l2", l2=0.3),
        regularizers.get("l1_l2", l1=0.05, l2=0.2),
    ],
)
def test_penalty_gradients(kernel_regularizer: regularizers.Regularizer, seed: int) -> None:
    hidden = _shapes(seed)[3]
    dense = Dense(
        hidden,
        "tanh",
        bias_initializer="random_normal",  # away from 0, where l1 has its kink
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=regularizers.get("l1_l2", l1=0.1, l2=0.1),
    )
    _regression_check(seed, [dense])


def test_penalty_regularizes_the_kernel_and_only_asked_for_biases() -> None:
    kernel = np.array([[1.0, -2.0], [0.5, 0.0]])
    bias = np.array([3.0, -1.0])
    plain = Sequential([Input((2,)), Dense(2, kernel_regularizer=regularizers.get("l2", l2=0.1))])
    plain.set_weights([kernel, bias])
    # l2 * sum(w^2) = 0.1 * (1 + 4 + 0.25) over the kernel only.
    assert plain.penalty() == pytest.approx(0.525)
    both = Sequential(
        [
            Input((2,)),
            Dense(
                2,
                kernel_regularizer=regularizers.get("l1", l1=0.1),
                bias_regularizer=regularizers.get("l1", l1=0.5),
            ),
        ]
    )
    both.set_weights([kernel, bias])
    # 0.1 * (1 + 2 + 0.5) + 0.5 * (3 + 1)
    assert both.penalty() == pytest.approx(2.35)


def test_dropout_is_the_identity_at_inference() -> None:
    model = Sequential([Input((5,)), Dropout(0.5)], seed=3)
    x = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(model.predict(x), x)
    np.testing.assert_array_equal(model.predict(x), x)


def test_dropout_in_training_zeroes_about_rate_and_scales_the_rest() -> None:
    layer = Dropout(0.3)
    layer.bind_noise(np.random.default_rng(0))
    out = layer.forward(np.ones((400, 250)), training=True)
    zero_fraction = np.mean(out == 0.0)
    # 100,000 Bernoulli(0.3) draws: standard deviation 0.0014.
    assert abs(zero_fraction - 0.3) < 0.01
    np.testing.assert_allclose(out[out != 0.0], 1.0 / 0.7, rtol=0, atol=1e-15)
    again = layer.forward(np.ones((400, 250)), training=True)
    assert not np.array_equal(out, again)


def test_batch_normalization_uses_batch_statistics_in_training() -> None:
    layer = BatchNormalization(momentum=0.9, epsilon=1e-3)
    layer.build(2, np.random.default_rng(0))
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]])
    out = layer.forward(x, training=True)
    # Column 0: mean 3, biased variance 8/3; column 1: mean 12, variance 8.
    expected = np.column_stack(
        [(x[:, 0] - 3.0) / np.sqrt(8 / 3 + 1e-3), (x[:, 1] - 12.0) / np.sqrt(8.0 + 1e-3)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_batch_normalization_uses_moving_averages_at_inference() -> None:
    layer = BatchNormalization(momentum=0.9, epsilon=1e-3)
    layer.build(1, np.random.default_rng(0))
    layer.params["gamma"][...] = 2.0
    layer.params["beta"][...] = 0.5
    layer.forward(np.array([[1.0], [3.0]]), training=True)  # mean 2, variance 1
    layer.forward(np.array([[4.0], [8.0], [6.0]]), training=True)  # mean 6, variance 8/3
    # Step 1: mean 0.9*0 + 0.1*2 = 0.2; variance 0.9*1 + 0.1*1 = 1.0.
    # Step 2: mean 0.9*0.2 + 0.1*6 = 0.78; variance 0.9*1.0 + 0.1*8/3 = 1.1666...
    moving_mean, moving_variance = 0.78, 0.9 + 0.8 / 3
    np.testing.assert_allclose(layer.state["moving_mean"], [moving_mean], rtol=1e-14)
    np.testing.assert_allclose(layer.state["moving_variance"], [moving_variance], rtol=1e-14)
    out = layer.forward(np.array([[0.0], [2.0]]), training=False)
    expected = (
        2.0 * (np.array([[0.0], [2.0]]) - moving_mean) / np.sqrt(moving_variance + 1e-3) + 0.5
    )
    np.testing.assert_allclose(out, expected, rtol=1e-13)


def test_batch_normalization_weights_in_keras_order() -> None:
    model = Sequential([Input((3,)), Dense(4), BatchNormalization()])
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 4), (4,), (4,), (4,), (4,), (4,)]
    np.testing.assert_array_equal(weights[2], np.ones(4))  # gamma
    np.testing.assert_array_equal(weights[3], np.zeros(4))  # beta
    np.testing.assert_array_equal(weights[4], np.zeros(4))  # moving mean
    np.testing.assert_array_equal(weights[5], np.ones(4))  # moving variance


def test_rrelu_slopes_are_random_in_range_in_training_and_the_mean_at_inference() -> None:
    layer = RReLU(lower=0.1, upper=0.3)
    layer.bind_noise(np.random.default_rng(5))
    negative = -np.ones((3, 200))
    slopes = -layer.forward(negative, training=True)
    assert np.all((slopes >= 0.1) & (slopes <= 0.3))
    # One slope per unit and step: shared down the batch, different across units and steps.
    np.testing.assert_array_equal(slopes[0], slopes[2])
    assert np.unique(slopes[0]).size == 200
    assert not np.array_equal(slopes[0], -layer.forward(negative, training=True)[0])
    np.testing.assert_allclose(layer.forward(negative, training=False), -0.2, rtol=1e-15)
    positive = np.full((2, 4), 1.5)
    np.testing.assert_array_equal(layer.forward(positive, training=True), positive)


def test_prelu_starts_at_a_quarter_and_sits_after_the_dense_weights() -> None:
    model = Sequential([Input((2,)), Dense(3, "prelu")])
    kernel, bias, alpha = model.get_weights()
    assert (kernel.shape, bias.shape) == ((2, 3), (3,))
    np.testing.assert_array_equal(alpha, [0.25, 0.25, 0.25])
    assert list(model.parameters()) == ["layers.0.kernel", "layers.0.bias", "layers.0.alpha"]
    model.set_weights([np.ones((2, 3)), np.zeros(3), np.array([0.1, 0.2, 0.3])])
    # z = -1 - 1 = -2 for every unit: output alpha * z.
    np.testing.assert_allclose(model.predict([[-1.0, -1.0]]), [[-0.2, -0.4, -0.6]])


@pytest.mark.parametrize(
    "make",
    [
        lambda: Dense(0),
        lambda: Dense(2, "no_such_activation"),
        lambda: Dropout(1.0),
        lambda: Dropout(-0.1),
        lambda: RReLU(lower=0.5, upper=0.2),
        lambda: RReLU(lower=-0.5),
        lambda: BatchNormalization(momentum=2.0),
        lambda: BatchNormalization(epsilon=0.0),
        lambda: Activation("prelu"),
        lambda: Input((0,)),
    ],
)
def test_bad_layer_arguments_raise_value_error(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]
