"""TrainingSession: defaults, commands, reproducibility, divergence, export/import."""

import json
import math
from typing import Any

import numpy as np
import pytest

from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.frame_builder import build_part
from app.sessions.frames import decode_frame, frame_bytes, split_rows
from app.sessions.session import CommandRefused, TrainingSession
from app.settings import get_settings


def session(**config: Any) -> TrainingSession:
    return TrainingSession(SessionConfig.model_validate(config))


def run(s: TrainingSession, epochs: int) -> None:
    s.step(epochs)
    while s.is_training:
        s.train_one_epoch()


def textbook_forward(s: TrainingSession, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """tanh hidden layers and a sigmoid output, from the exported weights alone."""
    weights = export_session(s)["weights"]
    hidden = []
    a = x
    for i in range(0, len(weights) - 2, 2):
        a = np.tanh(a @ np.array(weights[i]) + np.array(weights[i + 1]))
        hidden.append(a)
    z = a @ np.array(weights[-2]) + np.array(weights[-1])
    return hidden, 1.0 / (1.0 + np.exp(-z))


def test_empty_config_is_tensorflow_playgrounds_default() -> None:
    s = session()
    public = s.public()
    assert public["config"]["dataset"] == "circle"
    assert [layer["units"] for layer in public["config"]["layers"]] == [4, 2]
    assert public["config"]["learning_rate"] == 0.03 and public["config"]["batch_size"] == 10
    # TFP: 500 points, ratio 50 %.
    assert public["n_train"] == 250 and public["n_test"] == 250
    assert public["status"] == "paused" and public["epoch"] == 0


def test_history_losses_match_a_textbook_forward_of_the_weights() -> None:
    s = session()
    run(s, 3)
    x = s.data.x_test
    y = s.data.y_test[:, 0]
    _, p = textbook_forward(s, x)
    p = p[:, 0]
    bce = float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    accuracy = float(np.mean((p > 0.5) == (y > 0.5)))
    last = s.history.rows()[-1]
    assert len(s.history) == 3 and s.epoch == 3
    assert last[1] == pytest.approx(bce, rel=1e-9)
    assert last[3] == accuracy


def test_same_config_and_commands_give_bit_identical_weights() -> None:
    config = {"dataset": "spiral", "noise": 0.2, "seed": 7, "optimizer": "adam",
              "layers": [{"units": 5, "activation": "relu", "dropout": 0.2}]}
    a, b = session(**config), session(**config)
    for s in (a, b):
        run(s, 4)
        s.update({"learning_rate": 0.01})
        s.edit_weight(0, "kernel", [1, 2], 0.5)
        run(s, 3)
    assert a.weights_hash() == b.weights_hash()
    assert a.epoch == b.epoch == 7


def test_reset_same_start_restores_the_initial_weights_and_regenerate_changes_the_data() -> None:
    s = session()
    initial = s.weights_hash()
    first_points = s.data.x_train.copy()
    run(s, 2)
    assert s.weights_hash() != initial
    s.reset(same_start=True)
    assert s.weights_hash() == initial and s.epoch == 0 and len(s.history) == 0
    s.regenerate()
    assert s.config.seed == 1
    assert not np.array_equal(s.data.x_train, first_points)


def test_live_changes_keep_weights_and_architecture_changes_rebuild() -> None:
    s = session()
    run(s, 2)
    trained = s.weights_hash()
    assert s.update({"learning_rate": 0.1, "batch_size": 5, "regularization": "l2",
                     "regularization_rate": 0.001, "momentum": 0.9}) is False
    assert s.weights_hash() == trained and s.epoch == 2
    assert s.model.optimizer.learning_rate == 0.1
    run(s, 1)  # momentum switched on live: its velocity slot is created, no KeyError
    assert s.update({"layers": [{"units": 3}]}) is True
    assert s.epoch == 0 and [w.shape for w in s.model.get_weights()][:1] == [(2, 3)]


def test_edit_weight_sets_exactly_that_entry_and_checks_bounds() -> None:
    s = session()
    s.edit_weight(2, "bias", [0], 1.25)
    assert export_session(s)["weights"][5] == [1.25]
    with pytest.raises(ValueError, match=r"layer = 3 is out of range; expected 0\.\.2"):
        s.edit_weight(3, "bias", [0], 1.0)
    with pytest.raises(ValueError, match=r"index = \[2, 0\] is outside kernel of shape \[2, 4\]"):
        s.edit_weight(0, "kernel", [2, 0], 1.0)


def test_predict_matches_the_textbook_forward() -> None:
    s = session()
    points = [[0.0, 0.0], [3.0, -4.0]]
    _, p = textbook_forward(s, np.array(points))
    assert np.allclose(np.array(s.predict(points), dtype=float), p, rtol=1e-12)


def test_divergence_pauses_with_a_reason_naming_the_epoch() -> None:
    s = session(
        dataset="reg-plane", learning_rate=10.0, layers=[{"units": 8, "activation": "relu"}],
        features=["x1", "x2", "x1_sq", "x2_sq"],
    )
    s.play()
    for _ in range(200):
        if not s.is_training:
            break
        s.train_one_epoch()
    assert s.status == "diverged"
    assert s.status_reason is not None
    assert s.status_reason.endswith(f"at epoch {s.epoch}; try a smaller learning rate")
    assert s.status_reason.startswith("loss became ")
    with pytest.raises(CommandRefused):
        s.play()
    # A diverged session still gives a valid frame (NaN/inf become null in JSON).
    json.dumps(build_part(s, 1).header, allow_nan=False)


def test_epoch_budget_finishes_and_raising_it_reopens() -> None:
    s = session(epoch_budget=3)
    s.play()
    while s.is_training:
        s.train_one_epoch()
    assert (s.status, s.epoch, s.status_reason) == ("finished", 3, "epoch budget of 3 reached")
    s.update({"epoch_budget": 5})
    assert s.status == "paused"


def test_early_stopping_finishes_when_test_loss_stops_improving() -> None:
    s = session(early_stopping_patience=0, learning_rate=3.0)
    s.play()
    while s.is_training and s.epoch < 500:
        s.train_one_epoch()
    losses = s.history.rows()[:, 1]
    assert s.status == "finished"
    # Patience 0: it stops at the first epoch whose test loss is not below the best before it.
    assert losses[-1] >= min(losses[:-1])
    assert all(losses[i] < min(losses[:i]) for i in range(1, len(losses) - 1))


@pytest.mark.parametrize("config", [
    {},
    {"optimizer": "adam", "layers": [{"units": 3, "batch_norm": True, "dropout": 0.1}]},
    {"optimizer": "momentum", "augmentation": True, "regularization": "l1",
     "regularization_rate": 0.001},
    {"dataset": "blobs-3", "optimizer": "rmsprop", "layers": [{"units": 4, "activation": "elu"}]},
])
def test_export_then_import_continues_bit_identically(config: dict[str, Any]) -> None:
    original = session(**config)
    run(original, 5)
    exported = json.loads(json.dumps(export_session(original)))
    copy = import_session(SessionExport.model_validate(exported), "copy")
    assert copy.weights_hash() == original.weights_hash() and copy.epoch == 5
    run(original, 4)
    run(copy, 4)
    assert copy.weights_hash() == original.weights_hash()
    np.testing.assert_array_equal(copy.history.rows(), original.history.rows())


def test_import_refuses_non_numbers_and_wrong_shapes() -> None:
    exported = export_session(session())
    exported["weights"][0][0][0] = "1.0"
    with pytest.raises(ValueError, match=r"weights\[0\] holds '1.0'"):
        import_session(SessionExport.model_validate(exported), "bad")
    exported = export_session(session())
    exported["weights"][0] = [[1.0]]
    with pytest.raises(ValueError, match="shape"):
        import_session(SessionExport.model_validate(exported), "bad")


def test_frame_grid_is_the_textbook_output_over_cell_centres() -> None:
    s = session(grid_resolution=4, neuron_grid_resolution=2)
    part = build_part(s, 1)
    # Cell centres of a 4x4 grid over [-6, 6]: -4.5, -1.5, 1.5, 4.5; row 0 at the top (x2 = 4.5).
    centres = [-4.5, -1.5, 1.5, 4.5]
    points = np.array([[x1, x2] for x2 in centres[::-1] for x1 in centres])
    _, p = textbook_forward(s, points)
    output = part.sections["output"]
    low, high = output.extra["min"], output.extra["max"]
    # The grids are computed in float32 (256-level pictures): float32's rounding, ~1e-7.
    assert low == pytest.approx(p.min(), rel=1e-6) and high == pytest.approx(p.max(), rel=1e-6)
    decoded = low + output.data.astype(float) / 255 * (high - low)
    assert np.max(np.abs(decoded - p.reshape(4, 4))) <= (high - low) / 510 + 1e-6
    neurons = part.sections["neurons"]
    assert neurons.data.shape == (6, 2, 2)
    coarse = np.array([[x1, x2] for x2 in (3.0, -3.0) for x1 in (-3.0, 3.0)])
    first_hidden, _ = textbook_forward(s, coarse)
    # Header numbers carry 6 significant digits (the exact ones travel in lockstep/export).
    assert neurons.extra["ranges"][0] == pytest.approx(
        [first_hidden[0][:, 0].min(), first_hidden[0][:, 0].max()], rel=1e-5
    )
    kernel = part.header["layers"][0]["kernel"][0][0]
    assert math.isclose(kernel, s.model.get_weights()[0][0, 0], rel_tol=1e-5)


def test_frame_confusion_counts_match_textbook_predictions() -> None:
    s = session(dataset="xor", noise=0.1)
    run(s, 4)
    s.edit_weight(0, "bias", [0], 0.3)  # the frame must not reuse predictions from before this
    confusion = build_part(s, 1).header["confusion"]
    for name, x, y in (("train", s.data.x_train, s.data.y_train),
                       ("test", s.data.x_test, s.data.y_test)):
        _, p = textbook_forward(s, x)
        predicted, truth = (p[:, 0] > 0.5).astype(int), y[:, 0].astype(int)
        gold = [[int(np.sum((truth == t) & (predicted == q))) for q in (0, 1)] for t in (0, 1)]
        assert confusion[name] == gold


def test_an_inf_weight_behind_a_saturated_tanh_is_caught() -> None:
    s = session()
    # tanh(+-inf) = +-1 keeps every output and the loss finite: only the weights show it.
    s.model.layers[0].params["kernel"][0, 0] = np.inf
    s.step(1)
    s.train_one_epoch()
    assert s.status == "diverged"
    assert s.status_reason == "a weight became inf or nan at epoch 1; try a smaller learning rate"
    assert math.isfinite(s.history.rows()[-1][0])


def test_a_refused_change_leaves_the_session_as_it_was() -> None:
    s = session(regularization="l2", regularization_rate=0.001)
    run(s, 2)
    before = (s.weights_hash(), s.config, s.epoch)
    with pytest.raises(ValueError):
        s.update({"learning_rate": 0.5, "dataset": "no-such-dataset"})
    with pytest.raises(ValueError):
        s.update({"regularization_rate": -1.0})
    assert (s.weights_hash(), s.config, s.epoch) == before


def test_a_default_frame_with_the_most_rows_it_carries_is_at_most_16_kb() -> None:
    s = session()
    run(s, 400)
    limit = get_settings().max_rows_per_frame
    part, messages = build_part(s, 1), []
    while True:  # as the websocket sender does
        older, part = split_rows(part, limit)
        messages.append(frame_bytes(older or part, len(messages)))
        if older is None:
            break
    # Rows of 4 losses/metrics + 3 gradient norms: 160 x 4 float32 values a frame = 91 rows
    # with the grids; a rows-only frame (no grids, no weights) carries up to 4 x 91 of the rest.
    assert [decode_frame(m)[1]["epochs"].shape for m in messages] == [(309, 7), (91, 7)]
    # Issue 3: a default frame <= 16 KB, whatever the epochs/s (older rows go ahead on their own).
    assert all(len(message) <= 16 * 1024 for message in messages)


def test_init_scale_multiplies_every_initial_kernel_and_rebuilds_when_changed() -> None:
    plain, wide = session(), session(init_scale=10.0)
    for w_plain, w_wide, name in zip(
        plain.model.get_weights(), wide.model.get_weights(), ["kernel", "bias"] * 3, strict=True
    ):
        # The same draws, ten times larger; biases start at zero either way.
        np.testing.assert_array_equal(w_wide, w_plain * 10.0 if name == "kernel" else w_plain)
    run(plain, 3)
    assert plain.update({"init_scale": 10.0}) is True  # not a live field: new weights
    assert plain.epoch == 0 and plain.weights_hash() == wide.weights_hash()


def test_lesson_7s_too_wide_start_saturates_tanh_and_learns_far_slower_than_glorot() -> None:
    from app.lessons import LESSONS

    lesson = LESSONS["initialization"]
    wide_step = lesson.try_this[5]
    wide = session(**{**lesson.config, **wide_step.config})
    glorot = session(**{**lesson.config, **wide_step.config, "init_scale": 1.0})
    kernel, bias = wide.model.get_weights()[:2]
    hidden = np.tanh(wide.data.x_train @ kernel + bias)
    assert np.mean(np.abs(hidden) > 0.99) > 0.5  # most first-layer outputs start pinned at +-1
    run(glorot, 100)
    run(wide, 100)
    assert wide.history.rows()[-1, 0] > 5 * glorot.history.rows()[-1, 0]
