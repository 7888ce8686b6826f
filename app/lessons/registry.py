"""The eight lessons by id, in the lecture's order, and the demos computed beside them."""

from collections.abc import Callable
from typing import Any

from app.lessons.catalog_basics import BASICS_LESSONS
from app.lessons.catalog_deep_training import DEEP_TRAINING_LESSONS
from app.lessons.catalog_fitting import FITTING_LESSONS
from app.lessons.model import Lesson
from app.lessons.xor_demo import hand_set_xor_demo

LESSONS: dict[str, Lesson] = {
    lesson.id: lesson for lesson in [*BASICS_LESSONS, *FITTING_LESSONS, *DEEP_TRAINING_LESSONS]
}

# Lessons with something computed to show beside the preset (built on request, not at import).
DEMOS: dict[str, Callable[[], dict[str, Any]]] = {"xor-hidden-layer": hand_set_xor_demo}


def lesson_demo(lesson_id: str) -> dict[str, Any] | None:
    """The lesson's computed demo (lesson 2: the hand-set XOR net on its table), if any."""
    build = DEMOS.get(lesson_id)
    return None if build is None else build()
