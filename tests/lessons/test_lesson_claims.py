"""Each lesson's claim, checked on the engine against the lecture's numbers or a plain fact."""

from typing import Any

import numpy as np

from app.engine import Dense
from app.instruments.backprop import lecture_example, trace_model
from app.instruments.race import start_race
from app.lessons import LESSONS, hand_set_xor, hand_set_xor_demo
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession


def trained(config: dict[str, Any], epochs: int) -> TrainingSession:
    """A session from `config` trained `epochs` epochs (or until it stops by itself)."""
    session = TrainingSession(SessionConfig.model_validate(config))
    for _ in range(epochs):
        session.train_one_epoch()
        if session.status != "paused":
            break
    return session


def step_config(lesson_id: str, index: int) -> dict[str, Any]:
    lesson = LESSONS[lesson_id]
    return {**lesson.config, **lesson.try_this[index].config}


# ---- lesson 2 ---------------------------------------------------------------------------------

def test_hand_set_xor_net_outputs_the_slides_values() -> None:
    # The slide: out_h = [[-1.5, -0.5], [-0.5, 0.5], [-0.5, 0.5], [0.5, 1.5]], h = step(out_h),
    # out = [-0.5, 0.5, 0.5, -0.5], step(out) = [0, 1, 1, 0].
    demo = hand_set_xor_demo()
    assert demo["hidden_net"] == [[-1.5, -0.5], [-0.5, 0.5], [-0.5, 0.5], [0.5, 1.5]]
    assert demo["hidden"] == [[0, 0], [0, 1], [0, 1], [1, 1]]
    assert demo["output_net"] == [[-0.5], [0.5], [0.5], [-0.5]]
    assert demo["outputs"] == [0, 1, 1, 0]
    assert hand_set_xor().predict(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))[:, 0].tolist() == [
        0, 1, 1, 0
    ]


def test_sigmoid_mlp_learns_xor_and_another_start_does_not() -> None:
    learned = trained(step_config("xor-hidden-layer", 1), 500)
    outputs = learned.model.predict(learned.data.x_train)[:, 0]
    assert (outputs > 0.5).astype(int).tolist() == [0, 1, 1, 0]  # the truth table
    stuck = trained(step_config("xor-hidden-layer", 2), 500)
    assert stuck.history.to_columns()["train_metric"][-1] < 1.0


# ---- lesson 3 ---------------------------------------------------------------------------------

def test_a_larger_learning_rate_moves_only_the_new_weights() -> None:
    values = {q.symbol: q.value for p in lecture_example(1.0).phases for q in p.quantities}
    assert abs(values["dE/dw5"] - 0.08216) <= 1e-5  # the slide's gradient, unchanged
    assert abs(values["w5'"] - (0.4 - 1.0 * 0.08216)) <= 1e-5  # w5 - eta dE/dw5 by hand


# ---- lesson 5 ---------------------------------------------------------------------------------

def final_gap(session: TrainingSession) -> float:
    columns = session.history.to_columns()
    return float(columns["test_loss"][-1] - columns["train_loss"][-1])


def test_overfitting_and_every_remedy_narrows_the_gap() -> None:
    lesson = LESSONS["overfitting"]
    baseline = trained(step_config("overfitting", 0), 400)
    base_gap = final_gap(baseline)
    columns = baseline.history.to_columns()
    assert columns["train_loss"][-1] < 0.05  # the net memorised its 30 noisy points
    assert base_gap > 1.0
    for index in range(1, len(lesson.try_this)):
        remedy = trained(step_config("overfitting", index), 400)
        assert final_gap(remedy) < 0.7 * base_gap, (lesson.try_this[index].action, base_gap)


# ---- lesson 6 ---------------------------------------------------------------------------------

def first_to_last_ratio(config: dict[str, Any]) -> float:
    """First hidden Dense layer's gradient norm over the output layer's, on the training set."""
    session = TrainingSession(SessionConfig.model_validate(config))
    trace = trace_model(session.model, session.data.x_train, session.data.y_train, numeric=False)
    norms = [
        layer.grad_norm
        for layer, model_layer in zip(trace.layers, session.model.layers, strict=True)
        if isinstance(model_layer, Dense)
    ]
    assert norms[0] is not None and norms[-1] is not None
    return norms[0] / norms[-1]


def test_deep_sigmoid_gradients_vanish_and_relu_he_or_batch_norm_narrow_the_gap() -> None:
    sigmoid = first_to_last_ratio(step_config("vanishing-gradients", 0))
    relu_he = first_to_last_ratio(step_config("vanishing-gradients", 1))
    leaky_he = first_to_last_ratio(step_config("vanishing-gradients", 2))
    batch_norm = first_to_last_ratio(step_config("vanishing-gradients", 3))
    assert sigmoid < 0.1
    # Six sigmoid layers, each slope <= 1/4: at least (1/4)^5 ~ 1e-3 of shrinkage is expected.
    assert sigmoid < 1e-3
    for fixed in (relu_he, leaky_he, batch_norm):
        assert fixed > 100 * sigmoid


# ---- lesson 7 ---------------------------------------------------------------------------------

def hidden_kernels(session: TrainingSession) -> list[np.ndarray]:
    return [
        session.model.layers[i].params["kernel"] for i in session.built.dense_indices[:-1]
    ]


def test_zeros_init_keeps_units_identical_and_glorot_does_not() -> None:
    zeros = trained(step_config("initialization", 0), 100)
    for kernel in hidden_kernels(zeros):
        # Every unit (column) has the same incoming weights as unit 0, after 100 epochs.
        assert np.array_equal(kernel, np.repeat(kernel[:, :1], kernel.shape[1], axis=1))
    assert np.any(hidden_kernels(zeros)[1] != 0.0)  # they did move, in lockstep
    glorot = trained(step_config("initialization", 3), 5)
    for kernel in hidden_kernels(glorot):
        assert len({tuple(column) for column in kernel.T}) == kernel.shape[1]


def test_small_init_stays_near_chance_and_glorot_learns() -> None:
    chance = float(np.log(2.0))  # binary cross-entropy of a coin flip
    small = trained(step_config("initialization", 1), 100).history.to_columns()["train_loss"]
    glorot = trained(step_config("initialization", 3), 100).history.to_columns()["train_loss"]
    assert abs(small[-1] - chance) < 0.02
    assert glorot[-1] < 0.1


def test_ones_init_keeps_units_twins() -> None:
    ones = trained(step_config("initialization", 2), 100)
    for kernel in hidden_kernels(ones):
        assert np.array_equal(kernel, np.repeat(kernel[:, :1], kernel.shape[1], axis=1))


# ---- lesson 8 ---------------------------------------------------------------------------------

def test_the_race_ranks_as_the_lesson_says() -> None:
    lesson = LESSONS["optimizers"]
    race = start_race(SessionConfig.model_validate(lesson.config), lesson.instrument["racers"])
    race.step(200)
    final = {c["label"]: c["train_loss"][-1] for c in race.curves()}
    slow = min(final["SGD"], final["AdaGrad"])
    assert max(final["Adam"], final["RMSProp"]) < final["Momentum"] < slow
    bigger = start_race(
        SessionConfig.model_validate(lesson.config), lesson.try_this[1].instrument["racers"]
    )
    bigger.step(200)
    faster = {c["label"]: c["train_loss"][-1] for c in bigger.curves()}
    assert faster["AdaGrad"] < 0.6 * final["AdaGrad"]
