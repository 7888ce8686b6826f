"""The compiled fast path against the numpy path (the readable reference) and the lecture.

Each comparison trains two models built from the same seed, one with `fast.enabled = False`,
and checks that the fast path really ran (`fast.supports`), then weights, losses, optimizer
state, step counts, last updates and gradient norms. The two paths compute the same formulas
in the same order; only matmul summation order and tanh's last bit differ, hence rtol 1e-10.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import pytest

from app.engine import (
    Activation,
    BatchNormalization,
    Dense,
    Dropout,
    Input,
    Sequential,
    activations,
    constraints,
    fast,
    fast_kernels,
    optimizers,
    regularizers,
)

RTOL = 1e-10
Array = np.ndarray


@dataclass
class Case:
    """A net, its loss and optimizer, and the data it trains on."""

    name: str
    layers: Callable[[], list[Any]]
    loss: str
    optimizer: Callable[[], optimizers.Optimizer]
    classes: int = 0  # 0: binary labels; k: k classes; -1: regression targets
    n: int = 37  # not a multiple of the batch size: the last batch is short
    batch_size: int = 10
    extra: dict[str, Any] = field(default_factory=dict)


def _data(case: Case, seed: int = 3) -> tuple[Array, Array]:
    """Circle-like points with labels (binary, class index, one-hot or a real target)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=(case.n, 2))
    radius = np.hypot(x[:, 0], x[:, 1])
    if case.classes == -1:
        return x, (np.sin(x[:, 0]) + 0.5 * x[:, 1]).reshape(-1, 1)
    if case.classes == 0:
        return x, (radius < 2.0).astype(float)
    labels = np.minimum((radius / 1.5).astype(int), case.classes - 1).astype(float)
    if case.loss == "categorical_crossentropy":
        return x, np.eye(case.classes)[labels.astype(int)]
    return x, labels


def _model(case: Case) -> Sequential:
    model = Sequential([Input((2,)), *case.layers()], seed=7)
    model.compile(case.optimizer(), case.loss)
    return model


CASES = [
    Case(
        "tfp-default tanh 4-2, BCE, SGD",
        lambda: [Dense(4, "tanh"), Dense(2, "tanh"), Dense(1, "sigmoid")],
        "binary_crossentropy",
        lambda: optimizers.SGD(learning_rate=0.03),
    ),
    Case(
        "relu 8-8, momentum",
        lambda: [Dense(8, "relu"), Dense(8, "relu"), Dense(1, "sigmoid")],
        "binary_crossentropy",
        lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9),
    ),
    Case(
        "leaky_relu and elu with alphas, nesterov",
        lambda: [
            Dense(6, activations.LeakyReLU(alpha=0.2)),
            Dense(5, activations.ELU(alpha=0.7)),
            Dense(1, "sigmoid"),
        ],
        "binary_crossentropy",
        lambda: optimizers.SGD(learning_rate=0.05, momentum=0.8, nesterov=True),
    ),
    Case(
        "sigmoid hidden, linear output, mse, Adam",
        lambda: [Dense(5, "sigmoid"), Dense(1, "linear")],
        "mse",
        lambda: optimizers.Adam(learning_rate=0.02),
        classes=-1,
    ),
    Case(
        "softmax 3 classes, sparse CCE, RMSprop with momentum",
        lambda: [Dense(6, "tanh"), Dense(3, "softmax")],
        "sparse_categorical_crossentropy",
        lambda: optimizers.RMSprop(learning_rate=0.01, momentum=0.5),
        classes=3,
    ),
    Case(
        "one-hot CCE, Adagrad, no bias in the hidden layer",
        lambda: [Dense(4, "tanh", use_bias=False), Dense(3, "softmax")],
        "categorical_crossentropy",
        lambda: optimizers.Adagrad(learning_rate=0.1),
        classes=3,
    ),
    Case(
        "mse through softmax (the Jacobian) and a tanh output elsewhere",
        lambda: [Dense(4, "linear"), Dense(3, "softmax")],
        "mse",
        lambda: optimizers.SGD(learning_rate=0.5),
        classes=3,
        extra={"one_hot": True},
    ),
    Case(
        "tanh output with mse (TensorFlow Playground's own loss)",
        lambda: [Dense(3, "tanh"), Dense(1, "tanh")],
        "mse",
        lambda: optimizers.RMSprop(learning_rate=0.01),
        classes=-1,
    ),
    Case(
        "l1 kernel, l2 bias, l1_l2, max_norm",
        lambda: [
            Dense(
                6,
                "tanh",
                kernel_regularizer=regularizers.L1(l1=0.01),
                bias_regularizer=regularizers.L2(l2=0.02),
                kernel_constraint=constraints.MaxNorm(max_value=0.8),
            ),
            Dense(
                4,
                "relu",
                kernel_regularizer=regularizers.L1L2(l1=0.003, l2=0.01),
                kernel_constraint=constraints.MaxNorm(max_value=1.2),
            ),
            Dense(1, "sigmoid", kernel_regularizer=regularizers.L2(l2=0.05)),
        ],
        "binary_crossentropy",
        lambda: optimizers.SGD(learning_rate=0.1),
    ),
    Case(
        "no hidden layer (logistic regression), batch size 1",
        lambda: [Dense(1, "sigmoid")],
        "binary_crossentropy",
        lambda: optimizers.SGD(learning_rate=0.1),
        batch_size=1,
    ),
    Case(
        "two sigmoid outputs with BCE, batch larger than the data",
        lambda: [Dense(4, "tanh"), Dense(2, "sigmoid")],
        "binary_crossentropy",
        lambda: optimizers.Adam(learning_rate=0.05),
        classes=2,
        batch_size=64,
        extra={"one_hot": True},
    ),
]


@pytest.fixture
def numpy_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """A switch between the fast path (True) and the numpy path (False).

    It also counts the compiled epochs, so a comparison cannot pass by running numpy twice.
    """
    real_train_epoch = fast.train_epoch

    def counting_train_epoch(*args: Any) -> list[float]:
        COMPILED_EPOCHS.append(1)
        return real_train_epoch(*args)

    def use_fast(on: bool) -> None:
        monkeypatch.setattr(fast, "enabled", on)

    monkeypatch.setattr(fast, "train_epoch", counting_train_epoch)
    COMPILED_EPOCHS.clear()
    yield use_fast


COMPILED_EPOCHS: list[int] = []


def _targets(case: Case, y: Array) -> Array:
    if case.extra.get("one_hot") and y.ndim == 1:
        one_hot: Array = np.eye(case.classes)[y.astype(int)]
        return one_hot
    return y


def _train(case: Case, use_fast: bool, switch: Callable[[bool], None], epochs: int = 5) -> tuple[
    Sequential, list[float]
]:
    x, y = _data(case)
    model = _model(case)
    switch(use_fast)
    before = len(COMPILED_EPOCHS)
    history = model.fit(x, _targets(case, y), epochs=epochs, batch_size=case.batch_size)
    assert len(COMPILED_EPOCHS) - before == (epochs if use_fast else 0)
    return model, history.history["loss"]


def _assert_same_state(expected: Sequential, actual: Sequential) -> None:
    """Weights, optimizer slots, step count, last updates and gradient norms agree."""
    for want, got in zip(expected.get_weights(), actual.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-14)
    want_opt, got_opt = expected.optimizer, actual.optimizer
    assert want_opt is not None and got_opt is not None
    assert got_opt.iterations == want_opt.iterations
    assert got_opt.state.keys() == want_opt.state.keys()
    for key, slots in want_opt.state.items():
        assert got_opt.state[key].keys() == slots.keys()
        for slot, value in slots.items():
            np.testing.assert_allclose(got_opt.state[key][slot], value, rtol=RTOL, atol=1e-14)
    assert got_opt.last_update.keys() == want_opt.last_update.keys()
    for key, delta in want_opt.last_update.items():
        np.testing.assert_allclose(got_opt.last_update[key], delta, rtol=1e-8, atol=1e-14)
    assert actual.grad_norms.keys() == expected.grad_norms.keys()
    for key, norm in expected.grad_norms.items():
        assert actual.grad_norms[key] == pytest.approx(norm, rel=1e-8, abs=1e-14)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_compiled_epochs_match_the_numpy_path(
    case: Case, numpy_path: Callable[[bool], None]
) -> None:
    assert fast.supports(_built(case)), f"{case.name} should run on the fast path"
    reference, reference_losses = _train(case, False, numpy_path)
    compiled, compiled_losses = _train(case, True, numpy_path)
    np.testing.assert_allclose(compiled_losses, reference_losses, rtol=RTOL)
    _assert_same_state(reference, compiled)


def _built(case: Case) -> Sequential:
    model = _model(case)
    model.build(2)
    return model


@pytest.mark.parametrize("first_fast", [False, True], ids=["numpy-then-fast", "fast-then-numpy"])
def test_switching_paths_mid_run_continues_the_same_run(
    first_fast: bool, numpy_path: Callable[[bool], None]
) -> None:
    case = CASES[4]  # RMSprop with momentum: two state slots that must carry over
    x, y = _data(case)
    reference = _model(case)
    numpy_path(False)
    reference.fit(x, y, epochs=6, batch_size=case.batch_size)
    mixed = _model(case)
    numpy_path(first_fast)
    mixed.fit(x, y, epochs=3, batch_size=case.batch_size)
    numpy_path(not first_fast)
    mixed.fit(x, y, epochs=3, batch_size=case.batch_size)
    _assert_same_state(reference, mixed)


def _live_edits(model: Sequential, epoch: int) -> None:
    """What a live session does between epochs: rates, momentum, penalty, an edited weight."""
    optimizer = model.optimizer
    assert isinstance(optimizer, optimizers.SGD)
    dense = model.layers[0]
    assert isinstance(dense, Dense)
    if epoch == 1:
        optimizer.learning_rate = 0.2
    if epoch == 2:
        optimizer.momentum = 0.9
        parameters = model.parameters()
        for key, slots in optimizer.state.items():
            for slot, value in optimizer.build_state(parameters[key]).items():
                slots.setdefault(slot, value)
    if epoch == 3:
        dense.kernel_regularizer = regularizers.L2(l2=0.03)
        dense.params["kernel"][0, 1] = 0.5  # in place, as the session's edit_weight does
    if epoch == 4:
        weights = model.get_weights()
        model.set_weights([w * 0.9 for w in weights])


def test_live_changes_between_epochs_reach_the_compiled_path(
    numpy_path: Callable[[bool], None],
) -> None:
    case = CASES[0]
    x, y = _data(case)
    models = []
    for use_fast in (False, True):
        numpy_path(use_fast)
        model = _model(case)
        for epoch in range(6):
            _live_edits(model, epoch)
            model.fit(x, y, epochs=1, batch_size=case.batch_size)
        models.append(model)
    assert fast.supports(models[1])
    _assert_same_state(*models)


def test_the_lectures_worked_example_in_one_compiled_step() -> None:
    """The slide's 2-2-2 sigmoid net, squared error, lr 0.5 (E_total and w1..w8 to 5 dp)."""
    model = Sequential([Input((2,)), Dense(2, "sigmoid"), Dense(2, "sigmoid")])
    model.compile(optimizers.SGD(learning_rate=0.5), "mse")
    # Keras's mse over 2 outputs equals the slide's sum of 1/2 (target - out)^2.
    hidden = np.array([[0.15, 0.25], [0.2, 0.3]])  # columns: [w1, w2], [w3, w4]
    output = np.array([[0.4, 0.5], [0.45, 0.55]])  # columns: [w5, w6], [w7, w8]
    model.set_weights([hidden, np.full(2, 0.35), output, np.full(2, 0.6)])
    assert fast.supports(model)
    history = model.fit(np.array([[0.05, 0.1]]), np.array([[0.01, 0.99]]), epochs=1)
    assert history.history["loss"][0] == pytest.approx(0.29837, abs=1e-5)
    new_hidden, _, new_output, _ = model.get_weights()
    w1_to_w4 = [new_hidden[0, 0], new_hidden[1, 0], new_hidden[0, 1], new_hidden[1, 1]]
    w5_to_w8 = [new_output[0, 0], new_output[1, 0], new_output[0, 1], new_output[1, 1]]
    # The slide truncates to 5 decimals (w5' = 0.358916... prints as 0.35891).
    np.testing.assert_allclose(w1_to_w4, [0.14978, 0.19956, 0.24975, 0.2995], atol=1e-5)
    np.testing.assert_allclose(w5_to_w8, [0.35891, 0.40866, 0.5113, 0.56137], atol=1e-5)


UNSUPPORTED: dict[str, Callable[[], tuple[list[Any], str]]] = {
    "dropout": lambda: ([Dense(4, "tanh"), Dropout(0.2), Dense(1, "sigmoid")], "mse"),
    "batch norm": lambda: ([Dense(4), BatchNormalization(), Dense(1, "sigmoid")], "mse"),
    "prelu": lambda: ([Dense(4, "prelu"), Dense(1, "sigmoid")], "mse"),
    "rrelu": lambda: ([Dense(4, "rrelu"), Dense(1, "sigmoid")], "mse"),
    "separate Activation layer": lambda: ([Dense(4), Activation("tanh"), Dense(1)], "mse"),
    "hidden softmax": lambda: ([Dense(4, "softmax"), Dense(1, "sigmoid")], "mse"),
    "BCE on a tanh output": lambda: ([Dense(1, "tanh")], "binary_crossentropy"),
    "CCE on sigmoid outputs": lambda: ([Dense(3, "sigmoid")], "categorical_crossentropy"),
    "too wide": lambda: ([Dense(fast.FAST_MAX_UNITS + 1, "tanh"), Dense(1)], "mse"),
    "max_norm on axis 1": lambda: (
        [Dense(4, "tanh", kernel_constraint=constraints.MaxNorm(1.0, axis=1)), Dense(1)],
        "mse",
    ),
}


@pytest.mark.parametrize("name", list(UNSUPPORTED))
def test_models_outside_the_kernel_fall_back_to_numpy(name: str) -> None:
    layers, loss = UNSUPPORTED[name]()
    model = Sequential([Input((2,)), *layers], seed=1)
    model.compile("sgd", loss)
    model.build(2)
    assert not fast.supports(model)


def test_uncompiled_or_unbuilt_models_are_not_supported() -> None:
    model = Sequential([Dense(2, "tanh"), Dense(1, "sigmoid")])
    assert not fast.supports(model)  # not built
    model.build(2)
    assert not fast.supports(model)  # not compiled
    model.compile("sgd", "binary_crossentropy")
    assert fast.supports(model)


@pytest.mark.parametrize(
    ("bad_label", "message"),
    [(3.0, "out of range"), (-1.0, "out of range"), (1.5, "not an integer")],
)
def test_a_bad_class_label_raises_and_changes_nothing(bad_label: float, message: str) -> None:
    case = CASES[4]
    x, y = _data(case)
    y[11] = bad_label
    model = _model(case)
    model.build(2)
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        fast.train_epoch(model, x, y, 10, np.arange(len(y)))
    for want, got in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_bad_indices_and_shapes_are_refused_before_any_update() -> None:
    case = CASES[0]
    x, y = _data(case)
    model = _model(case)
    model.build(2)
    before = model.get_weights()
    order = np.arange(len(y))
    order[5] = len(y)
    with pytest.raises(ValueError, match=rf"order\[5\] = {len(y)} is not a sample index"):
        fast.train_epoch(model, x, y, 10, order)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        fast.train_epoch(model, x[:, :1], y, 10, np.arange(len(y)))
    with pytest.raises(ValueError, match=r"y must have shape \(n, 1\)"):
        fast.train_epoch(model, x, np.zeros((len(y), 2)), 10, np.arange(len(y)))
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        fast.train_epoch(model, x, y, 0, np.arange(len(y)))
    for want, got in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_kernel_tanh_and_sigmoid_are_within_two_ulp_of_extended_precision() -> None:
    """Gold: the same functions in x87 extended precision (64-bit mantissa), rounded."""
    z = np.concatenate([
        np.linspace(-25.0, 25.0, 2001),
        np.geomspace(1e-300, 1.0, 200),
        -np.geomspace(1e-12, 0.7, 200),
        [0.0, 0.625, -0.625, 22.0, 23.0, 700.0, -700.0],
    ])
    wide = z.astype(np.longdouble)
    assert np.finfo(np.longdouble).nmant >= 63, "needs x87 extended precision for the gold"
    gold_tanh = np.tanh(wide).astype(np.float64)
    gold_sigmoid = (1 / (1 + np.exp(-wide))).astype(np.float64)
    tanh = np.array([fast_kernels.tanh(v) for v in z])
    sigmoid = np.array([fast_kernels.sigmoid(v) for v in z])
    assert np.all(np.abs(tanh - gold_tanh) <= 2 * np.spacing(np.abs(gold_tanh)))
    assert np.all(np.abs(sigmoid - gold_sigmoid) <= 2 * np.spacing(gold_sigmoid))


def _grid_model(output: str, hidden: list[Any]) -> Sequential:
    model = Sequential([Input((2,)), *hidden, Dense(3 if output == "softmax" else 1, output)])
    model.build(2)
    return model


@pytest.mark.parametrize("output", ["sigmoid", "tanh", "linear", "softmax"])
def test_forward_all_gives_every_layers_output_as_the_layers_do(output: str) -> None:
    hidden = [Dense(5, "relu"), Dropout(0.5), Dense(4, "elu"), Dense(3, "sigmoid")]
    model = _grid_model(output, hidden)
    # Large inputs saturate the sigmoids: no overflow warning (warnings are errors here).
    points = np.random.default_rng(0).uniform(-400.0, 400.0, size=(300, 2))
    outputs = fast.forward_all(model, points)
    values = points
    # Equal up to matmul summation order: ulps of the O(1) terms that cancel in z.
    for layer, got in zip(model.layers, outputs, strict=True):
        values = layer.forward(values, training=False)
        np.testing.assert_allclose(got, values, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(outputs[-1], model.predict(points), rtol=1e-12, atol=1e-13)


def test_forward_all_reuses_its_buffers_and_checks_the_shape() -> None:
    model = _grid_model("sigmoid", [Dense(3, "tanh")])
    points = np.zeros((10, 2))
    first = fast.forward_all(model, points)
    second = fast.forward_all(model, points + 1.0)
    # Documented: the next call with the same model and n overwrites the arrays.
    assert np.shares_memory(first[-1], second[-1])
    np.testing.assert_allclose(first[-1], model.predict(points + 1.0), rtol=1e-12)
    with pytest.raises(ValueError, match=r"points must have shape \(n, 2\)"):
        fast.forward_all(model, np.zeros((4, 3)))


def test_warm_up_loads_the_kernel_and_one_signature_serves_all_inputs() -> None:
    assert fast.warm_up() >= 0.0
    case = CASES[0]
    x, y = _data(case)
    frozen_x, frozen_y = x.copy(), y.copy()
    frozen_x.flags.writeable = frozen_y.flags.writeable = False  # as app.datasets freezes them
    for inputs in [(x, y), (frozen_x, frozen_y)]:
        model = _model(case)
        model.build(2)
        fast.train_epoch(model, *inputs, 10, np.arange(len(y)))
    # Writable and read-only data share one compiled kernel (no second ~10 s compile).
    dispatcher: Any = fast_kernels.train_epoch_kernel  # a numba Dispatcher behind the cast
    assert len(dispatcher.signatures) == 1


def test_background_warm_up_finishes() -> None:
    thread = fast.start_warm_up()
    thread.join(timeout=300)
    assert not thread.is_alive()


def test_the_cache_falls_back_to_per_process_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no writable cache dir numba raises at decoration; the kernel must still compile."""
    real_njit = numba.njit
    calls: list[bool] = []

    def njit_without_cache_dir(**options: Any) -> Any:
        calls.append(options["cache"])
        if options["cache"]:
            raise RuntimeError("cannot cache function: no locator available")
        return real_njit(**options)

    monkeypatch.setattr(fast_kernels, "njit", njit_without_cache_dir)

    @fast_kernels._jit()
    def twice(value: float) -> float:
        return 2.0 * value

    assert twice(1.5) == 3.0
    assert calls == [True, False]
