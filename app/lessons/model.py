"""What a lesson is: the Lesson and TryThis records and the helpers the catalogs share.

A lesson's `config` is a session config (the field names of docs/protocol.md); a step's
`config` is a patch merged into the lesson's preset (steps are independent of each other, so
the page can run any one of them), its `command` a session command (docs/protocol.md) and its
`instrument` a patch to the lesson's instrument parameters. `kind` says what the page opens:
a live session, the perceptron run, the backprop trace, or the optimizer race.

Texts name the page's controls in double quotes, by their labels ("Seed", "Start race"), and
never say "press X" without quoting X: tests/browser/test_lessons.py checks every quoted name
against the page's controls. A session lesson's preset sets `speed` (epochs per second), the
pace its steps train at, so the learner watches them happen beside the lesson.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

LessonKind = Literal["session", "perceptron", "backprop", "race"]


@dataclass(frozen=True)
class TryThis:
    """One thing to do and what to look for."""

    action: str
    expect: str
    config: dict[str, Any] = field(default_factory=dict)
    command: dict[str, Any] | None = None
    instrument: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    """A section of the lecture, playable."""

    id: str
    number: int
    title: str
    section: str
    text: str
    kind: LessonKind
    config: dict[str, Any]
    try_this: list[TryThis]
    instrument: dict[str, Any] = field(default_factory=dict)


def repeated_layers(count: int, units: int, activation: str,
                    **extra: Any) -> list[dict[str, Any]]:
    """`count` identical hidden-layer configs of `units` units, as a preset's `layers`."""
    layer = {"units": units, "activation": activation, "dropout": 0.0, "batch_norm": False}
    return [{**layer, **extra} for _ in range(count)]


def lesson_configs(lesson: Lesson) -> list[dict[str, Any]]:
    """The preset and each step's config (preset + patch), as the page would send them."""
    return [lesson.config] + [{**lesson.config, **step.config} for step in lesson.try_this]
