"""Instability read from the training loss itself: a learning rate too high shows long before inf.

A `StabilityDetector` is fed each epoch's train loss. Every CHECK_EVERY epochs it looks at the
last WINDOW of them and names one of two troubles, as long as the loss is not clearly learning
(its median is at least LEARNING x the loss of the best constant guess, e.g. ln 2 for balanced
binary classes: a net that oscillates far below that level is noisy, not stuck):

- "unstable": the loss jumps around instead of falling: the mean step |loss[e] - loss[e-1]| is
  at least SWING x the window's mean loss and at least SIGN_CHANGES of the steps reverse the
  previous step's direction.
- "rising": the window's median is at least RISE x the early level (the median of the first
  WINDOW epochs after the detector started).

A raised warning stays until the loss settles (hysteresis, so it does not flicker): "unstable"
clears once the swing is below SWING / 2, "rising" once the median is below (1 + RISE) / 2 x the
early level, either once the median falls below the learning level. The session restarts the
detector (and so clears the warning) when the model is rebuilt, the data change, or a training
hyper-parameter changes.

The thresholds come from real runs over 1,000 epochs (tests/sessions/test_stability_runs.py
keeps the main ones): with the default 4-2 net, every window of lr 10 on circle, xor and spiral
whose median is above the learning level swings by 0.24-0.81 (flagged at the first check, epoch
40), while lr 0.03-0.3 (seeds 0-2, tanh and relu) either falls below the learning level or
swings by at most 0.07.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from statistics import median
from typing import Any, Literal

WINDOW = 40  # epochs per judgement
CHECK_EVERY = 10  # epochs between judgements (a check costs ~10 us of Python)
SWING = 0.2  # mean |step| / mean loss
SIGN_CHANGES = 0.4  # share of steps that reverse direction
RISE = 2.0  # window median / early median
LEARNING = 0.5  # window median / constant-guess loss, below which the net is learning
# TensorFlow Playground's learning-rate menu; the suggestion is the largest entry at most
# SUGGEST_FACTOR times below the current rate (10 -> 0.3, 3 -> 0.1, 1 -> 0.03).
TFP_LEARNING_RATES = (0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
SUGGEST_FACTOR = 30.0

Kind = Literal["unstable", "rising"]


@dataclass(frozen=True)
class Trouble:
    """What a check found: the kind, where the window started, and the numbers to explain it."""

    kind: Kind
    since_epoch: int
    low: float  # the window's lowest loss
    high: float  # the window's highest loss
    early: float  # the early level (median of the first WINDOW epochs)
    level: float  # the window's median


def suggested_learning_rate(learning_rate: float) -> float:
    """The largest TFP rate <= learning_rate / SUGGEST_FACTOR (else that quotient, 1 digit)."""
    target = learning_rate / SUGGEST_FACTOR * (1 + 1e-9)  # 0.3 / 30 may round below 0.01
    below = [rate for rate in TFP_LEARNING_RATES if rate <= target]
    return max(below) if below else float(f"{learning_rate / SUGGEST_FACTOR:.1g}")


def _number(value: float) -> str:
    """A loss or rate for a sentence: 3 significant digits, no exponent for everyday values."""
    return f"{value:.3g}"


def explain(trouble: Trouble, learning_rate: float) -> dict[str, Any]:
    """The wire form: {"kind", "message", "since_epoch", "suggested_learning_rate"}."""
    suggestion = suggested_learning_rate(learning_rate)
    rate, low, high = _number(learning_rate), _number(trouble.low), _number(trouble.high)
    if trouble.kind == "unstable":
        what = f"the training loss is jumping between {low} and {high} instead of falling"
    else:
        what = (
            f"the training loss has risen to {_number(trouble.level)} from "
            f"{_number(trouble.early)} in its first {WINDOW} epochs"
        )
    return {
        "kind": trouble.kind,
        "message": f"The learning rate {rate} is too high: {what}. Try {_number(suggestion)}.",
        "since_epoch": trouble.since_epoch,
        "suggested_learning_rate": suggestion,
    }


class StabilityDetector:
    """Feed it every epoch's train loss with `add`; `trouble` is the current warning or None."""

    def __init__(self, reference: float) -> None:
        # The loss of the best constant guess on the training set (class shares or mean target).
        self.learning_level = LEARNING * reference
        self.window: deque[float] = deque(maxlen=WINDOW)
        self.early: float | None = None
        self.trouble: Trouble | None = None
        self._since_check = 0

    def add(self, epoch: int, loss: float) -> None:
        """Record epoch `epoch`'s train loss; judge the window every CHECK_EVERY epochs."""
        if not math.isfinite(loss):
            return  # non-finite losses are the session's `diverged`, not a warning
        self.window.append(loss)
        if len(self.window) < WINDOW:
            return
        if self.early is None:
            self.early = median(self.window)
            self._since_check = CHECK_EVERY  # judge the first full window at once
        self._since_check += 1
        if self._since_check >= CHECK_EVERY:
            self._since_check = 0
            self._check(epoch)

    def _check(self, epoch: int) -> None:
        assert self.early is not None
        losses = list(self.window)
        level = median(losses)
        steps = [b - a for a, b in pairwise(losses)]
        mean = sum(losses) / len(losses)
        swing = sum(abs(step) for step in steps) / len(steps) / mean if mean > 0 else 0.0
        reversals = sum(a * b < 0 for a, b in pairwise(steps))
        reversal_share = reversals / (len(steps) - 1)
        stuck = level >= self.learning_level and self.learning_level > 0
        kind: Kind | None = None
        if stuck and swing >= SWING and reversal_share >= SIGN_CHANGES:
            kind = "unstable"
        elif stuck and level >= RISE * self.early:
            kind = "rising"
        current = self.trouble
        if kind is None:
            if current is not None and self._settled(current.kind, stuck, swing, level):
                self.trouble = None
            elif current is not None:  # still troubled, below the raising thresholds
                self.trouble = self._found(current.kind, current.since_epoch, losses, level)
            return
        since = current.since_epoch if current and current.kind == kind else epoch - WINDOW + 1
        self.trouble = self._found(kind, since, losses, level)

    def _settled(self, kind: Kind, stuck: bool, swing: float, level: float) -> bool:
        """Hysteresis: a warning clears only once its measure is well inside the calm side."""
        assert self.early is not None
        if not stuck:
            return True
        if kind == "unstable":
            return swing < SWING / 2
        return level < (1 + RISE) / 2 * self.early

    def _found(self, kind: Kind, since: int, losses: list[float], level: float) -> Trouble:
        assert self.early is not None
        return Trouble(kind, since, min(losses), max(losses), self.early, level)
