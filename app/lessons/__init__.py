"""The lecture as lessons: one per section, each a preset, a short text and "try this" steps.

model.py says what a lesson is, catalog_*.py hold the eight lessons, registry.py orders them
by id, xor_demo.py computes lesson 2's hand-set network. Import from here: `app.lessons`.
"""

from app.lessons.catalog_deep_training import RACERS
from app.lessons.catalog_fitting import OVERFIT_LAYERS
from app.lessons.model import Lesson, LessonKind, TryThis, lesson_configs
from app.lessons.registry import DEMOS, LESSONS, lesson_demo
from app.lessons.xor_demo import (
    TRUTH_TABLE_INPUTS,
    XOR_HAND_WEIGHTS,
    hand_set_xor,
    hand_set_xor_demo,
)

__all__ = [
    "DEMOS",
    "LESSONS",
    "OVERFIT_LAYERS",
    "RACERS",
    "TRUTH_TABLE_INPUTS",
    "XOR_HAND_WEIGHTS",
    "Lesson",
    "LessonKind",
    "TryThis",
    "hand_set_xor",
    "hand_set_xor_demo",
    "lesson_configs",
    "lesson_demo",
]
