"""The instability detector on hand-made loss sequences (real runs: test_stability_runs.py)."""

import math

import pytest

from app.sessions.stability import (
    CHECK_EVERY,
    WINDOW,
    StabilityDetector,
    Trouble,
    explain,
    suggested_learning_rate,
)

REFERENCE = math.log(2)  # balanced binary classes: a constant guess of 0.5 scores ln 2


def feed(detector: StabilityDetector, losses: list[float], first_epoch: int = 1) -> None:
    for epoch, loss in enumerate(losses, start=first_epoch):
        detector.add(epoch, loss)


def test_a_loss_jumping_between_1_and_3_is_unstable_at_the_first_full_window() -> None:
    detector = StabilityDetector(REFERENCE)
    jumping = [1.0, 3.0] * (WINDOW // 2)
    feed(detector, jumping[:-1])
    assert detector.trouble is None  # 39 epochs: no judgement yet
    feed(detector, jumping[-1:], first_epoch=WINDOW)
    # Steps are all +-2 around a mean of 2 (swing 1.0) and every step reverses the last.
    assert detector.trouble == Trouble("unstable", 1, 1.0, 3.0, 2.0, 2.0)


def test_a_loss_rising_to_twice_its_early_level_is_rising() -> None:
    detector = StabilityDetector(REFERENCE)
    early = [0.70 - 0.001 * i for i in range(WINDOW)]  # slowly falling, median 0.6805
    feed(detector, early)
    assert detector.trouble is None
    climbing = [0.7 + 0.05 * i for i in range(1, WINDOW + 1)]  # smooth: no reversals
    feed(detector, climbing, first_epoch=WINDOW + 1)
    trouble = detector.trouble
    assert trouble is not None and trouble.kind == "rising"
    # Checks at epochs 60 and 70 saw medians 0.715 and 1.225, under 2 x 0.6805 = 1.361; the one
    # at epoch 80 saw epochs 41..80, median (1.7 + 1.75) / 2 = 1.725: rising since epoch 41.
    assert trouble.level == pytest.approx(1.725) and trouble.early == pytest.approx(0.6805)
    assert trouble.since_epoch == 41
    assert (trouble.low, trouble.high) == (pytest.approx(0.75), pytest.approx(2.7))


def test_a_falling_loss_raises_nothing() -> None:
    detector = StabilityDetector(REFERENCE)
    feed(detector, [0.7 * 0.99**i for i in range(500)])
    assert detector.trouble is None


def test_spikes_far_below_the_constant_guess_are_noise_not_instability() -> None:
    # Like lr 0.3 on circle: a low loss with big relative spikes (0.03 <-> 0.3): still learning.
    detector = StabilityDetector(REFERENCE)
    feed(detector, [0.03, 0.3] * 100)
    assert detector.trouble is None


def test_mild_wobble_at_the_constant_guess_is_not_unstable() -> None:
    # Swing 0.1 / 0.7 = 0.14 < SWING: stuck, but not jumping around.
    detector = StabilityDetector(REFERENCE)
    feed(detector, [0.65, 0.75] * 100)
    assert detector.trouble is None


def test_the_warning_stays_until_the_loss_settles_then_clears() -> None:
    detector = StabilityDetector(REFERENCE)
    feed(detector, [1.0, 3.0] * WINDOW)  # epochs 1..80
    assert detector.trouble is not None and detector.trouble.since_epoch == 1
    # Swing 0.3 / 2 = 0.15: below the raising threshold (0.2), above the clearing one (0.1).
    feed(detector, [1.85, 2.15] * WINDOW, first_epoch=81)
    assert detector.trouble is not None and detector.trouble.since_epoch == 1
    assert (detector.trouble.low, detector.trouble.high) == (1.85, 2.15)
    feed(detector, [1.95, 2.05] * (WINDOW // 2), first_epoch=161)  # swing 0.05: settled
    assert detector.trouble is None


def test_a_warning_clears_once_the_loss_falls_below_the_learning_level() -> None:
    detector = StabilityDetector(REFERENCE)
    feed(detector, [1.0, 3.0] * (WINDOW // 2))
    assert detector.trouble is not None
    feed(detector, [0.05, 0.2] * (WINDOW // 2), first_epoch=WINDOW + 1)
    assert detector.trouble is None


def test_checks_come_every_check_every_epochs() -> None:
    detector = StabilityDetector(REFERENCE)
    feed(detector, [0.7] * WINDOW)
    feed(detector, [1.0, 3.0] * (CHECK_EVERY // 2 - 1), first_epoch=WINDOW + 1)
    assert detector.trouble is None  # 8 epochs since the last check
    feed(detector, [1.0, 3.0] * 20, first_epoch=WINDOW + CHECK_EVERY - 1)
    assert detector.trouble is not None and detector.trouble.kind == "unstable"


def test_non_finite_losses_are_left_to_diverged() -> None:
    detector = StabilityDetector(REFERENCE)
    feed(detector, [math.inf, math.nan] * WINDOW)
    assert detector.trouble is None and len(detector.window) == 0


def test_no_warning_without_anything_to_learn() -> None:
    # One class only: the constant guess is perfect, so there is no level to be stuck at.
    detector = StabilityDetector(0.0)
    feed(detector, [1.0, 3.0] * WINDOW)
    assert detector.trouble is None


@pytest.mark.parametrize(("rate", "suggestion"), [
    (10.0, 0.3), (3.0, 0.1), (1.0, 0.03), (0.3, 0.01), (0.1, 0.003), (0.03, 0.001),
    (0.01, 0.0001), (0.003, 0.0001), (0.0003, 0.00001), (5.0, 0.1),
    # Below TFP's smallest rate x 30: the thirtieth itself, to one significant digit.
    (0.0001, 3e-6), (0.0002, 7e-6),
])
def test_the_suggested_rate_is_tfps_largest_at_most_a_thirtieth(
    rate: float, suggestion: float
) -> None:
    assert suggested_learning_rate(rate) == suggestion
    assert suggested_learning_rate(rate) <= rate / 10


def test_the_messages_explain_in_plain_words() -> None:
    unstable = explain(Trouble("unstable", 1, 0.9, 6.1, 1.5, 2.0), 10.0)
    assert unstable == {
        "kind": "unstable",
        "message": "The learning rate 10 is too high: the training loss is jumping between 0.9 "
                   "and 6.1 instead of falling. Try 0.3.",
        "since_epoch": 1,
        "suggested_learning_rate": 0.3,
    }
    rising = explain(Trouble("rising", 41, 0.5, 1.7, 0.12, 0.96), 1.0)
    assert rising["message"] == (
        "The learning rate 1 is too high: the training loss has risen to 0.96 from 0.12 in its "
        "first 40 epochs. Try 0.03."
    )
