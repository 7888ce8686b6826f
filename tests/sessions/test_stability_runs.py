"""The instability warning on real training runs: too-high rates warn, sound ones never do."""

from typing import Any

import pytest

from app.sessions.config import SessionConfig
from app.sessions.frame_builder import build_part
from app.sessions.session import TrainingSession


def session(**config: Any) -> TrainingSession:
    return TrainingSession(SessionConfig.model_validate(config))


def play_until_warned(s: TrainingSession, max_epochs: int) -> dict[str, Any] | None:
    s.play()
    while s.is_training and s.epoch < max_epochs:
        s.train_one_epoch()
        if s.warning is not None:
            return s.warning
    return None


@pytest.mark.parametrize("dataset", ["circle", "xor", "spiral"])
def test_learning_rate_10_warns_within_a_few_hundred_epochs_and_keeps_running(
    dataset: str,
) -> None:
    s = session(dataset=dataset, learning_rate=10.0)  # the default 4-2 tanh net
    warning = play_until_warned(s, 300)
    assert warning is not None, f"no warning in 300 epochs; last loss {s.metrics()}"
    assert s.status == "running" and s.status_reason is None  # a warning, not a stop
    assert warning["kind"] == "unstable"
    assert warning["suggested_learning_rate"] == 0.3
    assert warning["message"].startswith("The learning rate 10 is too high: the training loss ")
    assert warning["message"].endswith(". Try 0.3.")
    assert 1 <= warning["since_epoch"] <= s.epoch
    # The session view and every frame header say the same.
    assert s.public()["warning"] == warning
    assert build_part(s, s.epoch).header["warning"] == warning
    # Taking the advice clears it at once (a new learning rate is a new curve).
    s.update({"learning_rate": warning["suggested_learning_rate"]})
    assert s.warning is None and s.public()["warning"] is None


@pytest.mark.parametrize("config", [
    {"dataset": "circle"}, {"dataset": "xor"}, {"dataset": "gauss"}, {"dataset": "spiral"},
    {"dataset": "circle", "learning_rate": 0.3},
])
def test_sound_learning_rates_never_warn(config: dict[str, Any]) -> None:
    s = session(**config)
    s.step(1000)
    while s.is_training:
        s.train_one_epoch()
        assert s.warning is None, (s.epoch, s.warning)
    assert s.epoch == 1000 and s.status == "paused"


def test_a_relu_net_killed_by_a_high_rate_is_rising() -> None:
    # lr 1 with relu on circle: the loss falls to ~0.06, then the units die and it climbs to
    # ~0.5 (a constant guess): well above its early level.
    s = session(learning_rate=1.0, layers=[{"units": 4, "activation": "relu"},
                                           {"units": 2, "activation": "relu"}])
    warning = play_until_warned(s, 400)
    assert warning is not None and warning["kind"] == "rising"
    assert s.status == "running"
    assert warning["suggested_learning_rate"] == 0.03
    assert "the training loss has risen to " in warning["message"]


def test_reset_and_a_rebuild_clear_the_warning_but_a_display_change_does_not() -> None:
    s = session(dataset="spiral", learning_rate=10.0)
    assert play_until_warned(s, 300) is not None
    s.update({"frame_rate": 10.0, "grid_resolution": 50})  # what is shown: same curve
    assert s.warning is not None
    s.reset()
    assert s.warning is None
    assert play_until_warned(s, 300) is not None
    s.update({"layers": [{"units": 3}]})
    assert s.warning is None
