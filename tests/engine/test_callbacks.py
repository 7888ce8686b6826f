"""Callbacks: History and EarlyStopping with Keras 3's semantics, worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from app.engine import Dense, Input, Sequential, callbacks, optimizers


class ScriptedModel:
    """A stand-in model whose weights are just the epoch number they were left at."""

    def __init__(self) -> None:
        self.stop_training = False
        self.weights = [np.array([-1.0])]

    def get_weights(self) -> list[npt.NDArray[np.float64]]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence[npt.ArrayLike]) -> None:
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]


def run(
    stopper: callbacks.EarlyStopping, values: list[float], monitor: str = "val_loss"
) -> tuple[ScriptedModel, int]:
    """Feed one monitored value per epoch, as fit would; returns the model and epochs run."""
    model = ScriptedModel()
    stopper.set_model(model)
    stopper.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        model.weights = [np.array([float(epoch)])]  # this epoch's training result
        stopper.on_epoch_end(epoch, {monitor: value, "loss": 0.0})
        epochs += 1
        if model.stop_training:
            break
    stopper.on_train_end()
    return model, epochs


def test_stops_once_patience_epochs_bring_no_improvement() -> None:
    # Best 0.8 at epoch 1; epochs 2 and 3 do not beat it: wait reaches 2 at epoch 3.
    stopper = callbacks.EarlyStopping(patience=2)
    _, epochs = run(stopper, [1.0, 0.8, 0.9, 0.85, 0.95, 0.1])
    assert epochs == 4
    assert stopper.stopped_epoch == 3
    assert stopper.best == 0.8
    assert stopper.best_epoch == 1


def test_patience_zero_stops_at_the_first_epoch_without_improvement() -> None:
    _, epochs = run(callbacks.EarlyStopping(), [1.0, 0.9, 0.9, 0.5])
    assert epochs == 3


def test_min_delta_decides_what_counts_as_an_improvement() -> None:
    # 0.95 improves on 1.0 by only 0.05 < 0.1: no improvement, and patience 1 is used up.
    _, epochs = run(callbacks.EarlyStopping(patience=1, min_delta=0.1), [1.0, 0.95, 0.5])
    assert epochs == 2
    _, epochs = run(callbacks.EarlyStopping(patience=1, min_delta=0.01), [1.0, 0.95, 0.94, 0.5])
    assert epochs == 3


def test_accuracy_is_maximized_in_auto_mode() -> None:
    stopper = callbacks.EarlyStopping(monitor="val_accuracy", patience=1)
    assert stopper.mode == "max"
    _, epochs = run(stopper, [0.5, 0.7, 0.6, 0.9], monitor="val_accuracy")
    assert epochs == 3
    assert stopper.best == 0.7


def test_restore_best_weights_puts_back_the_best_epochs_weights() -> None:
    stopper = callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    model, epochs = run(stopper, [1.0, 0.6, 0.7, 0.8, 0.1])
    assert epochs == 4
    np.testing.assert_array_equal(model.weights[0], [1.0])  # weights of epoch 1


def test_without_restore_the_last_weights_stay() -> None:
    model, _ = run(callbacks.EarlyStopping(patience=2), [1.0, 0.6, 0.7, 0.8])
    np.testing.assert_array_equal(model.weights[0], [3.0])


def test_a_missing_monitor_is_a_clear_error() -> None:
    stopper = callbacks.EarlyStopping(monitor="val_loss")
    stopper.set_model(ScriptedModel())
    stopper.on_train_begin()
    with pytest.raises(ValueError, match=r"'val_loss'.*available: loss"):
        stopper.on_epoch_end(0, {"loss": 1.0})


def test_bad_arguments_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="mode"):
        callbacks.EarlyStopping(mode="sideways")
    with pytest.raises(ValueError, match="patience"):
        callbacks.EarlyStopping(patience=-1)


class WeightRecorder(callbacks.Callback):
    """Keeps the model's weights and logs at the end of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[npt.NDArray[np.float64]]] = []
        self.logs: list[dict[str, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        assert self.model is not None
        self.weights.append(self.model.get_weights())
        self.logs.append(dict(logs or {}))


def test_fit_stops_early_and_restores_the_recorded_best_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = x @ np.array([1.0, -2.0]) + 5.0
    # The validation targets share the bias but slope the other way: learning the bias helps,
    # learning the slope hurts; on the way to the fit, val_loss (= 5 (s + 0.2)^2 + 25 (1 - s)^2
    # for a fraction s of the way, for whitened inputs) bottoms out near s = 0.8.
    x_val = rng.normal(size=(20, 2))
    y_val = -0.2 * (x_val @ np.array([1.0, -2.0])) + 5.0
    model = Sequential([Input((2,)), Dense(1, kernel_initializer="zeros")])
    model.compile(optimizers.SGD(learning_rate=0.02), "mse")
    recorder = WeightRecorder()
    stopper = callbacks.EarlyStopping(patience=3, restore_best_weights=True)
    history = model.fit(
        x,
        y,
        epochs=200,
        batch_size=40,
        validation_data=(x_val, y_val),
        callbacks=[recorder, stopper],
    )
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    assert 0 < best < len(val_losses) - 1
    assert len(history.epoch) == best + 3 + 1 < 200  # stopped patience epochs after the best
    assert [logs["val_loss"] for logs in recorder.logs] == val_losses
    for restored, recorded in zip(model.get_weights(), recorder.weights[best], strict=True):
        np.testing.assert_array_equal(restored, recorded)


def test_history_records_each_epoch() -> None:
    history = callbacks.History()
    history.on_train_begin()
    history.on_epoch_end(0, {"loss": 2.0})
    history.on_epoch_end(1, {"loss": 1.0, "val_loss": 3.0})
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [2.0, 1.0], "val_loss": [3.0]}
