"""Sequential: the lecture's networks, determinism, Keras shapes and bookkeeping, and errors."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine import (
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    Sequential,
    fast,
    optimizers,
    regularizers,
)

XOR_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = np.array([0.0, 1.0, 1.0, 0.0])


def _data(seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Points in the plane labelled by the sign of x1 * x2 (TensorFlow Playground's XOR)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 2))
    return x, (x[:, 0] * x[:, 1] > 0).astype(float)


def _classifier(seed: int = 0, optimizer: str | optimizers.Optimizer = "sgd") -> Sequential:
    model = Sequential([Input((2,)), Dense(4, "tanh"), Dense(1, "sigmoid")], seed=seed)
    model.compile(optimizer, "binary_crossentropy", metrics=["accuracy"])
    return model


# ---- the lecture's XOR ------------------------------------------------------------------------


def test_the_slides_hand_set_step_network_computes_xor() -> None:
    model = Sequential([Input((2,)), Dense(2, "step"), Dense(1, "step")])
    model.set_weights(
        [np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([-1.5, -0.5]), [[-1.0], [1.0]], [-0.5]]
    )
    np.testing.assert_array_equal(model.predict(XOR_X), [[0.0], [1.0], [1.0], [0.0]])


def test_training_through_a_step_unit_raises_a_clear_error() -> None:
    model = Sequential([Input((2,)), Dense(2, "step"), Dense(1, "sigmoid")])
    model.compile("sgd", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"step activation.*no useful gradient"):
        model.fit(XOR_X, XOR_Y, epochs=1)
    with pytest.raises(ValueError, match="step"):
        model.train_on_batch(XOR_X, XOR_Y)


def test_an_mlp_trained_from_a_seed_solves_xor() -> None:
    model = _classifier(seed=1, optimizer=optimizers.Adam(learning_rate=0.05))
    model.fit(XOR_X, XOR_Y, epochs=300, batch_size=4)
    np.testing.assert_array_equal(model.predict(XOR_X).ravel() > 0.5, XOR_Y == 1.0)
    assert model.evaluate(XOR_X, XOR_Y) == [pytest.approx(0.0, abs=0.1), 1.0]


def test_zeros_initialization_keeps_hidden_units_identical() -> None:
    model = Sequential(
        [
            Input((2,)),
            Dense(3, "sigmoid", kernel_initializer="zeros"),
            Dense(1, "sigmoid", kernel_initializer="zeros"),
        ]
    )
    model.compile(optimizers.SGD(learning_rate=0.5), "binary_crossentropy")
    x, y = _data()
    model.fit(x, y, epochs=20, batch_size=8)
    hidden_kernel, hidden_bias, output_kernel, _ = model.get_weights()
    assert np.abs(hidden_kernel).max() > 1e-3  # the units learned something ...
    for unit in (1, 2):  # ... but every hidden unit learned the same thing
        np.testing.assert_allclose(hidden_kernel[:, unit], hidden_kernel[:, 0], rtol=1e-12)
        np.testing.assert_allclose(hidden_bias[unit], hidden_bias[0], rtol=1e-12)
        np.testing.assert_allclose(output_kernel[unit], output_kernel[0], rtol=1e-12)


# ---- determinism ------------------------------------------------------------------------------


def _noisy_model(seed: int) -> Sequential:
    model = Sequential(
        [Input((2,)), Dense(6, "rrelu"), Dropout(0.3), Dense(4, "tanh"), Dense(1, "sigmoid")],
        seed=seed,
    )
    model.compile("adam", "binary_crossentropy")
    return model


def test_the_same_seed_gives_bit_identical_weights_after_training() -> None:
    x, y = _data()
    first, second, other = _noisy_model(7), _noisy_model(7), _noisy_model(8)
    for model in (first, second, other):
        model.fit(x, y, epochs=5, batch_size=8)
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


class RecordingModel(Sequential):
    """Records every minibatch the numpy path trains on."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[np.ndarray] = []

    def _train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        self.batches.append(x.copy())
        return super()._train_step(x, y)


@pytest.mark.parametrize("with_dropout", [False, True])
def test_the_same_seed_with_other_optimizers_starts_equal_and_sees_the_same_batches(
    monkeypatch: pytest.MonkeyPatch, with_dropout: bool
) -> None:
    monkeypatch.setattr(fast, "enabled", False)  # batches are recorded on the numpy path
    x, y = _data(n=30)
    racers = []
    for index, optimizer in enumerate(["sgd", "adam", "rmsprop", "adagrad"]):
        middle = [Dropout(0.5)] if with_dropout and index % 2 else []
        model = RecordingModel(
            [Input((2,)), Dense(4, "tanh"), *middle, Dense(1, "sigmoid")], seed=11
        )
        model.compile(optimizer, "binary_crossentropy")
        racers.append(model)
    initial = [model.get_weights() for model in racers]
    for model in racers:
        model.fit(x, y, epochs=3, batch_size=7)
    for weights, model in zip(initial[1:], racers[1:], strict=True):
        for a, b in zip(initial[0], weights, strict=True):
            np.testing.assert_array_equal(a, b)
        assert len(model.batches) == len(racers[0].batches) == 3 * 5
        for a, b in zip(racers[0].batches, model.batches, strict=True):
            np.testing.assert_array_equal(a, b)


# ---- fit, evaluate, predict -------------------------------------------------------------------


def test_fit_returns_a_history_of_every_epoch() -> None:
    x, y = _data()
    model = _classifier()
    history = model.fit(x, y, epochs=3, batch_size=10, validation_data=(x[:10], y[:10]))
    assert history.epoch == [0, 1, 2]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 3 for values in history.history.values())
    assert model.history is history


def test_the_epoch_loss_is_the_size_weighted_mean_of_its_batches() -> None:
    # With learning rate 0 nothing moves, so every batch is scored by the same weights and
    # the weighted mean of batch means (sizes 4, 4, 2) is the mean over all 10 points.
    x, y = _data(n=10)
    model = _classifier(optimizer=optimizers.SGD(learning_rate=0.0))
    before = model.evaluate(x, y)
    history = model.fit(x, y, epochs=1, batch_size=4)
    assert isinstance(before, list)
    assert history.history["loss"][0] == pytest.approx(before[0], rel=1e-12)


def test_validation_split_holds_out_the_last_fraction_before_shuffling() -> None:
    x, y = _data(n=40)
    split, held_out = _classifier(seed=3), _classifier(seed=3)
    by_split = split.fit(x, y, epochs=2, batch_size=5, validation_split=0.25)
    by_data = held_out.fit(x[:30], y[:30], epochs=2, batch_size=5, validation_data=(x[30:], y[30:]))
    assert by_split.history == by_data.history


def test_predict_in_batches_equals_one_pass_and_ignores_dropout() -> None:
    model = Sequential([Input((2,)), Dense(5, "relu"), Dropout(0.5), Dense(2)], seed=4)
    x = np.random.default_rng(0).normal(size=(23, 2))
    whole = model.predict(x)
    np.testing.assert_allclose(model.predict(x, batch_size=5), whole, rtol=1e-14)
    np.testing.assert_array_equal(model.predict(x), whole)


def test_metrics_against_hand_counts() -> None:
    model = Sequential([Input((2,)), Dense(1, "sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy", "mae", "mse"])
    model.set_weights([[[1.0], [0.0]], [0.0]])
    x = np.array([[20.0, 0.0], [-20.0, 0.0], [20.0, 0.0], [-20.0, 0.0]])
    # Predictions ~1, ~0, ~1, ~0 against labels 1, 1, 1, 0: 3 of 4 right; errors ~0, 1, 0, 0.
    loss, accuracy, mae, mse = model.evaluate(x, [1.0, 1.0, 1.0, 0.0])  # type: ignore[misc]
    assert accuracy == 0.75
    assert mae == pytest.approx(0.25, abs=1e-8)
    assert mse == pytest.approx(0.25, abs=1e-8)
    assert loss == pytest.approx(20.0 / 4, abs=1e-7)  # one point costs -log(sigmoid(-20))


def test_sparse_accuracy_takes_the_argmax() -> None:
    model = Sequential([Input((3,)), Dense(3, "softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.set_weights([np.eye(3), np.zeros(3)])
    x = np.array([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0], [0.0, 5.0, 0.0]])
    result = model.evaluate(x, [0, 1, 2, 2])
    assert isinstance(result, list)
    assert result[1] == 0.75


def test_saturated_sigmoid_with_crossentropy_stays_finite() -> None:
    model = Sequential([Input((1,)), Dense(1, "sigmoid")])
    model.compile(optimizers.SGD(learning_rate=0.1), "binary_crossentropy")
    model.set_weights([[[1000.0]], [0.0]])
    # The wrong label at z = +-1000 costs exactly |z| per point in the stable form.
    loss = model.train_on_batch([[1.0], [-1.0]], [0.0, 1.0])
    assert loss == pytest.approx(1000.0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_loss_value_is_the_data_loss_and_evaluate_adds_the_penalty() -> None:
    model = Sequential([Input((2,)), Dense(1, kernel_regularizer=regularizers.get("l2", l2=0.5))])
    model.compile("sgd", "mse")
    model.set_weights([[[1.0], [2.0]], [0.5]])
    x, y = np.array([[1.0, 1.0], [0.0, 0.0]]), np.array([3.0, 0.0])
    # Outputs 3.5 and 0.5: squared errors 0.25 each; penalty 0.5 * (1 + 4).
    assert model.loss_value(x, y) == pytest.approx(0.25)
    assert model.penalty() == pytest.approx(2.5)
    assert model.evaluate(x, y) == pytest.approx(2.75)


def test_train_epoch_trains_one_epoch_and_returns_its_mean_loss() -> None:
    x, y = _data()
    model = _classifier(optimizer=optimizers.SGD(learning_rate=0.5))
    before = model.loss_value(x, y)
    losses = [model.train_epoch(x, y, batch_size=10) for _ in range(30)]
    assert all(isinstance(value, float) for value in losses)
    assert model.loss_value(x, y) < before


# ---- one step's bookkeeping -------------------------------------------------------------------


def test_grad_norms_after_a_step_match_the_hand_gradient() -> None:
    model = Sequential([Input((2,)), Dense(1)])
    model.compile(optimizers.SGD(learning_rate=0.1), "mse")
    kernel, bias = np.array([[0.5], [-1.0]]), np.array([0.25])
    model.set_weights([kernel, bias])
    x, y = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 1.0]]), np.array([[1.0], [0.0], [2.0]])
    # mse gradient: dW = 2/n X^T (XW + b - y), db = 2/n sum(XW + b - y).
    residual = x @ kernel + bias - y
    d_kernel, d_bias = 2 / 3 * x.T @ residual, 2 / 3 * residual.sum(axis=0)
    model.train_on_batch(x, y)
    expected = np.sqrt(np.sum(d_kernel**2) + np.sum(d_bias**2))
    assert model.grad_norms == {"layers.0": pytest.approx(expected, rel=1e-12)}
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.1 * d_kernel, rtol=1e-13)
    np.testing.assert_allclose(new_bias, bias - 0.1 * d_bias, rtol=1e-13)


def test_grad_norms_cover_each_layer_with_parameters() -> None:
    model = Sequential([Input((2,)), Dense(3, "tanh"), Dropout(0.2), Dense(1)])
    model.compile("sgd", "mse")
    model.train_on_batch(np.ones((4, 2)), np.zeros(4))
    assert set(model.grad_norms) == {"layers.0", "layers.2"}


def test_max_norm_clips_each_units_incoming_weights_after_the_update() -> None:
    model = Sequential([Input((3,)), Dense(2, kernel_constraint="max_norm")])
    model.compile(optimizers.SGD(learning_rate=0.0), "mse")
    model.set_weights([np.array([[3.0, 0.1], [4.0, 0.2], [0.0, 0.2]]), np.zeros(2)])
    model.train_on_batch(np.ones((1, 3)), np.zeros(1 * 2).reshape(1, 2))
    kernel = model.get_weights()[0]
    # Column 0 had norm 5 > 2: scaled to (1.2, 1.6, 0); column 1 (norm 0.3) is untouched.
    np.testing.assert_allclose(kernel[:, 0], [1.2, 1.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(kernel[:, 1], [0.1, 0.2, 0.2], rtol=1e-12)


def test_trace_changes_nothing() -> None:
    x, y = _data()
    traced, plain = _noisy_model(5), _noisy_model(5)
    for model in (traced, plain):
        model.build(2)
    iterations = traced.optimizer.iterations if traced.optimizer else -1
    before = traced.get_weights()
    trace = traced.trace(x[:8], y[:8], training=True)
    assert traced.optimizer is not None and traced.optimizer.iterations == iterations
    for a, b in zip(before, traced.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [layer.z.shape for layer in trace.layers] == [(8, 6), (8, 6), (8, 4), (8, 1)]
    assert set(trace.gradients) == set(traced.parameters())
    # Training afterwards draws the same dropout masks and slopes as a model never traced.
    traced.fit(x, y, epochs=2, batch_size=8)
    plain.fit(x, y, epochs=2, batch_size=8)
    for a, b in zip(traced.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# ---- weights, parameters, summary -------------------------------------------------------------


def test_weights_in_keras_order_and_shapes() -> None:
    model = Sequential([Input((2,)), Dense(4, "prelu"), BatchNormalization(), Dense(1)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(2, 4), (4,), (4,), (4,), (4,), (4,), (4,), (4, 1), (1,)]
    assert list(model.parameters()) == [
        "layers.0.kernel",
        "layers.0.bias",
        "layers.0.alpha",
        "layers.1.gamma",
        "layers.1.beta",
        "layers.2.kernel",
        "layers.2.bias",
    ]
    replacement = [np.full(shape, float(i)) for i, shape in enumerate(shapes)]
    model.set_weights(replacement)
    for a, b in zip(model.get_weights(), replacement, strict=True):
        np.testing.assert_array_equal(a, b)
    # parameters() are the live arrays: set_weights wrote into them.
    np.testing.assert_array_equal(model.parameters()["layers.2.bias"], [8.0])


def test_summary_counts_parameters() -> None:
    model = Sequential([Input((2,)), Dense(4, "tanh"), BatchNormalization(), Dense(1)])
    text = model.summary()
    # Dense 2*4 + 4 = 12, BN 4 + 4 trainable and 4 + 4 moving, Dense 4 + 1 = 5.
    assert "Total params: 33" in text
    assert "Trainable params: 25" in text
    assert "Non-trainable params: 8" in text


def test_layers_get_keras_style_unique_names() -> None:
    model = Sequential([Input((2,)), Dense(3), Dense(2), Dropout(0.1), Dense(1)])
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "dropout", "dense_2"]


# ---- errors -----------------------------------------------------------------------------------


def test_bad_data_raises_value_errors_naming_what_arrived() -> None:
    model = _classifier()
    with pytest.raises(ValueError, match="3 features per row; the model expects 2"):
        model.fit(np.ones((4, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"x contains NaN"):
        model.fit(np.array([[np.nan, 0.0]]), np.zeros(1))
    with pytest.raises(ValueError, match=r"y contains NaN"):
        model.fit(np.zeros((1, 2)), np.array([np.inf]))
    with pytest.raises(ValueError, match=r"y must have shape \(4, 1\)"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(n, n_features\)"):
        model.predict(np.zeros(2))
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(np.zeros((4, 2)), np.zeros(4), batch_size=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(np.zeros((4, 2)), np.zeros(4), validation_split=1.0)
    with pytest.raises(ValueError, match="set_weights expects 4 arrays, got 1"):
        model.set_weights([np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"expects shape \(2, 4\), got \(4, 2\)"):
        model.set_weights([np.zeros((4, 2)), np.zeros(4), np.zeros((4, 1)), np.zeros(1)])


def test_unknown_names_and_missing_setup_raise_value_errors() -> None:
    model = Sequential([Input((2,)), Dense(1)])
    with pytest.raises(ValueError, match="compile"):
        model.fit(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="nadam"):
        model.compile("nadam", "mse")
    with pytest.raises(ValueError, match="hinge"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        model.compile("sgd", "mse", metrics=["f1"])
    with pytest.raises(ValueError, match="not built"):
        Sequential([Dense(1)]).get_weights()
    with pytest.raises(ValueError, match="seed"):
        Sequential(seed=-1)


def test_the_model_builds_from_the_first_data_without_input() -> None:
    model = Sequential([Dense(3, "tanh"), Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.ones((5, 4)), np.zeros(5))
    assert model.get_weights()[0].shape == (4, 3)
