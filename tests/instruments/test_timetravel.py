"""Time travel by replay: past epochs' weights, frames of them, forks."""

import numpy as np
import pytest

from app.instruments.timetravel import replay
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, import_session
from app.sessions.frames import decode_frame
from app.sessions.session import TrainingSession

CONFIG = SessionConfig.model_validate({"dataset": "xor", "n_samples": 80, "grid_resolution": 10})


def trained(epochs: int) -> TrainingSession:
    session = TrainingSession(CONFIG)
    for _ in range(epochs):
        session.train_one_epoch()
    return session


def test_replay_reproduces_every_epoch_of_an_independent_run() -> None:
    live = trained(12)
    replayed = replay(live)
    assert replayed.verified
    assert replayed.checkpoints.epochs == list(range(13))
    for epoch in (0, 5, 12):
        gold = trained(epoch).model.get_weights()  # a separate run stopped at that epoch
        stored = replayed.checkpoints.get(epoch).weights
        assert all(np.array_equal(a, b) for a, b in zip(gold, stored, strict=True))


def test_a_later_replay_extends_the_earlier_one() -> None:
    live = trained(5)
    first = replay(live)
    for _ in range(4):
        live.train_one_epoch()
    second = replay(live, first)
    assert second is first  # continued, not replayed from epoch 0
    assert second.verified
    assert second.checkpoints.epochs == list(range(10))
    assert second.checkpoints.get(9).weights[0].tolist() == live.model.get_weights()[0].tolist()
    live.reset()  # epoch 0 again: the old replay is past it, so a fresh one is made
    third = replay(live, second)
    assert third.session is not second.session
    assert third.checkpoints.epochs == [0]


def test_frame_at_an_epoch_shows_that_epochs_network() -> None:
    replayed = replay(trained(8))
    header, arrays = decode_frame(replayed.frame_at(3))
    assert header["epoch"] == 3
    assert header["time_travel"]["epoch"] == 3
    assert header["weights_hash"] == trained(3).weights_hash()
    assert header["metrics"]["train_loss"] == trained(3).history.to_columns()["train_loss"][-1]
    assert arrays["output"].shape == (10, 10)
    # Showing the past does not move the replay itself.
    assert replayed.session.weights_hash() == trained(8).weights_hash()


def test_a_mid_run_change_is_reported_as_unverified() -> None:
    live = trained(4)
    live.update({"learning_rate": 0.3})
    live.train_one_epoch()
    assert not replay(live).verified


def test_fork_starts_from_the_epochs_weights_with_new_settings() -> None:
    replayed = replay(trained(10))
    export = replayed.fork_export(6, {"learning_rate": 0.1, "optimizer": "adam"})
    fork = import_session(SessionExport.model_validate(export), "fork")
    assert fork.epoch == 6
    assert fork.config.learning_rate == 0.1
    assert fork.config.optimizer == "adam"
    assert fork.weights_hash() == trained(6).weights_hash()
    assert len(fork.history) == 6
    fork.train_one_epoch()
    assert fork.epoch == 7


def test_fork_refuses_changes_that_reshape_the_weights() -> None:
    replayed = replay(trained(2))
    with pytest.raises(ValueError, match="a fork keeps the weights, so it cannot change layers"):
        replayed.fork_export(1, {"layers": [{"units": 3}]})


def test_a_long_run_in_little_memory_keeps_every_2k_th_epoch() -> None:
    live = trained(40)
    one = sum(w.nbytes for w in live.model.get_weights())
    replayed = replay(live, memory_bytes=6 * one)  # room for 6 checkpoints of 41
    assert replayed.verified
    assert replayed.checkpoints.nbytes <= 6 * one
    assert replayed.checkpoints.stride == 8  # ceil(41 / 8) = 6 fit; stride 4 would need 11
    assert replayed.checkpoints.epochs == [0, 8, 16, 24, 32, 40]
    header, _ = decode_frame(replayed.frame_at(13))
    assert header["epoch"] == 16  # the nearest stored epoch
    assert header["weights_hash"] == trained(16).weights_hash()
