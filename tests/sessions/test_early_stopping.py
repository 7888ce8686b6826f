"""Early stopping follows Keras: stop once `patience` epochs in a row did not improve."""

from collections.abc import Iterator
from typing import Any

import pytest

from app.engine.callbacks import EarlyStopping
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession

# Test losses by epoch 1..8. Best 0.8 at epoch 4; epochs 5 (0.85), 6 (0.8, equal is no
# improvement) and 7 (0.81) do not improve on it: with patience 3, epoch 7 is the third in a row.
TEST_LOSSES = [1.0, 0.9, 0.95, 0.8, 0.85, 0.8, 0.81, 0.5]


def scripted(patience: int | None) -> TrainingSession:
    """A real session whose evaluation reports TEST_LOSSES (training itself is real)."""
    config = SessionConfig.model_validate({"early_stopping_patience": patience})
    s = TrainingSession(config)
    rows: Iterator[float] = iter(TEST_LOSSES)

    def evaluate() -> tuple[float, float, float, float]:
        return 0.5, next(rows), 0.5, 0.5

    s._evaluate = evaluate  # type: ignore[method-assign]
    return s


def keras_stop_epoch(patience: int) -> int | None:
    """The 1-based epoch after which the engine's Keras-3 EarlyStopping stops, if any."""

    class Model:
        stop_training = False

        def get_weights(self) -> list[Any]:
            return []

        def set_weights(self, weights: Any) -> None: ...

    callback, model = EarlyStopping(monitor="val_loss", patience=patience), Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, loss in enumerate(TEST_LOSSES):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            return epoch + 1
    return None


@pytest.mark.parametrize(("patience", "stop_epoch", "epochs"), [
    (3, 7, "3 epochs"),
    (2, 6, "2 epochs"),
    (1, 3, "1 epoch"),
    (0, 3, "1 epoch"),  # Keras: patience 0 stops at the first epoch without improvement
    (4, None, None),
])
def test_patience_p_stops_after_p_epochs_without_improvement(
    patience: int, stop_epoch: int | None, epochs: str | None
) -> None:
    assert keras_stop_epoch(patience) == stop_epoch  # the hand count agrees with Keras
    s = scripted(patience)
    s.play()
    while s.is_training and s.epoch < len(TEST_LOSSES):
        s.train_one_epoch()
    if stop_epoch is None:
        assert s.status == "running" and s.epoch == len(TEST_LOSSES)
        return
    best = min(TEST_LOSSES[:stop_epoch])
    assert (s.status, s.epoch) == ("finished", stop_epoch)
    assert s.status_reason == (
        f"early stopping at epoch {stop_epoch}: test loss has not improved on {best:.6g} "
        f"for {epochs}"
    )
