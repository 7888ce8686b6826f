"""Per-epoch gradient norms: history rows, frames and export, against hand-written backprop."""

import json
import math
from typing import Any

import numpy as np
import pytest

from app.engine import fast
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.frame_builder import build_part
from app.sessions.frames import decode_frame, frame_bytes
from app.sessions.history import History
from app.sessions.session import TrainingSession

LOSS_COLUMNS = ["train_loss", "test_loss", "train_metric", "test_metric"]
NORM_COLUMNS = ["grad_norm_0", "grad_norm_1", "grad_norm_2"]


def full_batch_session() -> TrainingSession:
    """The default net (2-4-2-1 tanh, sigmoid, BCE, plain SGD) with one batch per epoch."""
    s = TrainingSession(SessionConfig.model_validate({}))
    s.update({"batch_size": len(s.data.x_train)})
    return s


def textbook_norms(weights: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> list[float]:
    """Each Dense layer's ||(dW, db)|| of the mean BCE over (x, y), by hand-written backprop."""
    activations = [x]
    for i in range(0, len(weights) - 2, 2):
        activations.append(np.tanh(activations[-1] @ weights[i] + weights[i + 1]))
    p = 1.0 / (1.0 + np.exp(-(activations[-1] @ weights[-2] + weights[-1])))
    dz = (p - y) / len(x)  # d mean-BCE / d logit
    norms = []
    for layer in range(len(weights) // 2 - 1, -1, -1):
        kernel = weights[2 * layer]
        d_kernel, d_bias = activations[layer].T @ dz, dz.sum(axis=0)
        norms.append(math.sqrt(float((d_kernel**2).sum() + (d_bias**2).sum())))
        dz = (dz @ kernel.T) * (1.0 - activations[layer] ** 2)  # tanh' = 1 - a^2
    return norms[::-1]


@pytest.mark.parametrize("compiled", [True, False])
def test_every_epoch_row_holds_each_dense_layers_gradient_norm_of_its_last_step(
    compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast, "enabled", compiled)
    s = full_batch_session()
    x, y = s.data.x_train, s.data.y_train
    gold = []
    for _ in range(5):  # one batch an epoch: its last step's gradient is at the epoch's start
        gold.append(textbook_norms(s.model.get_weights(), x, y))
        s.step(1)
        s.train_one_epoch()
    assert s.history.columns == LOSS_COLUMNS + NORM_COLUMNS
    np.testing.assert_allclose(s.history.rows()[:, 4:], gold, rtol=1e-9)


def test_frames_carry_the_norm_columns_by_name_as_float32() -> None:
    s = full_batch_session()
    s.step(3)
    while s.is_training:
        s.train_one_epoch()
    header, arrays = decode_frame(frame_bytes(build_part(s, 1), 0))
    assert header["sections"]["epochs"]["columns"] == LOSS_COLUMNS + NORM_COLUMNS
    rows = arrays["epochs"]
    assert rows.dtype == np.float32 and rows.shape == (3, 7)
    np.testing.assert_array_equal(rows, s.history.rows().astype(np.float32))
    # The header's per-layer norm is the latest epoch's.
    last = [layer["grad_norm"] for layer in header["layers"]]
    np.testing.assert_allclose(rows[-1, 4:], last, rtol=1e-6)


def test_export_round_trips_the_norms_and_an_old_export_gets_nan_norms() -> None:
    s = full_batch_session()
    s.step(4)
    while s.is_training:
        s.train_one_epoch()
    data = json.loads(json.dumps(export_session(s)))
    assert set(data["history"]) == set(LOSS_COLUMNS + NORM_COLUMNS)
    copy = import_session(SessionExport.model_validate(data), "copy")
    np.testing.assert_array_equal(copy.history.rows(), s.history.rows())
    old: dict[str, Any] = {**data, "history": {c: data["history"][c] for c in LOSS_COLUMNS}}
    restored = import_session(SessionExport.model_validate(old), "old")
    np.testing.assert_array_equal(restored.history.rows()[:, :4], s.history.rows()[:, :4])
    assert np.isnan(restored.history.rows()[:, 4:]).all()


def test_history_refuses_columns_it_does_not_know() -> None:
    columns: dict[str, list[float | None]] = {c: [1.0] for c in LOSS_COLUMNS}
    with pytest.raises(ValueError, match="grad_norm_7"):
        History.from_columns({**columns, "grad_norm_7": [0.5]}, 3)
    with pytest.raises(ValueError, match="differ in length"):
        History.from_columns({**columns, "test_loss": [1.0, 2.0]})
