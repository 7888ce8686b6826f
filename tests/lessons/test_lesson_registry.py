"""The lesson registry: eight lessons in the lecture's order, every preset valid."""

from typing import Any

import pytest

from app.instruments.perceptron_run import run_perceptron
from app.instruments.race import start_race
from app.lessons import LESSONS, Lesson, lesson_configs, lesson_demo
from app.sessions.config import SessionConfig


def test_eight_lessons_in_the_lectures_order() -> None:
    assert [lesson.number for lesson in LESSONS.values()] == list(range(1, 9))
    assert list(LESSONS) == [
        "perceptron", "xor-hidden-layer", "backprop-by-hand", "output-units", "overfitting",
        "vanishing-gradients", "initialization", "optimizers",
    ]
    assert [lesson.kind for lesson in LESSONS.values()] == [
        "perceptron", "session", "backprop", "session", "session", "session", "session", "race",
    ]


@pytest.mark.parametrize("lesson", LESSONS.values(), ids=list(LESSONS))
def test_every_lesson_has_text_and_steps(lesson: Lesson) -> None:
    assert lesson.title and lesson.section
    assert 200 <= len(lesson.text) <= 800
    assert lesson.try_this
    for step in lesson.try_this:
        assert step.action and step.expect


@pytest.mark.parametrize("lesson", LESSONS.values(), ids=list(LESSONS))
def test_every_preset_and_step_config_is_a_valid_session_config(lesson: Lesson) -> None:
    for config in lesson_configs(lesson):
        SessionConfig.model_validate(config)  # the real schema: raises on any bad field


def instrument_params(lesson: Lesson) -> list[dict[str, Any]]:
    return [lesson.instrument] + [{**lesson.instrument, **s.instrument} for s in lesson.try_this]


def test_perceptron_lesson_parameters_run() -> None:
    lesson = LESSONS["perceptron"]
    outcomes = {}
    for params in instrument_params(lesson):
        run = run_perceptron(**params)
        outcomes[params["dataset"]] = run.converged
    assert outcomes == {"and-table": True, "or-table": True, "xor-table": False}


def test_race_lesson_racers_start() -> None:
    lesson = LESSONS["optimizers"]
    base = SessionConfig.model_validate(lesson.config)
    for params in instrument_params(lesson):
        race = start_race(base, params["racers"])
        assert len(race.sessions) == 5


def test_backprop_lesson_names_the_lecture_preset() -> None:
    for params in instrument_params(LESSONS["backprop-by-hand"]):
        assert params["preset"] == "lecture"
        assert params["learning_rate"] > 0


def test_only_lesson_two_has_a_demo() -> None:
    assert [lid for lid in LESSONS if lesson_demo(lid) is not None] == ["xor-hidden-layer"]
