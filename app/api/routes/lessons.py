"""The lessons over REST: the menu, and one lesson with its preset, text and try-this steps."""

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from app.lessons import LESSONS, LessonKind, lesson_demo

router = APIRouter(
    prefix="/api/lessons",
    tags=["lessons"],
    responses={404: {"description": "No such lesson"}},
)


class LessonSummary(BaseModel):
    """One entry of the lessons menu."""

    id: str
    number: int
    title: str
    section: str
    kind: LessonKind


class TryThisPublic(BaseModel):
    """A step: what to do (a config patch, a command, instrument parameters), what to see."""

    action: str
    expect: str
    config: dict[str, Any]
    command: dict[str, Any] | None
    instrument: dict[str, Any]


class LessonPublic(LessonSummary):
    """A whole lesson: its text, preset session config, instrument parameters and steps."""

    text: str
    config: dict[str, Any]
    instrument: dict[str, Any]
    try_this: list[TryThisPublic]
    demo: dict[str, Any] | None


@router.get("")
def read_lessons() -> list[LessonSummary]:
    """The eight lessons, in the lecture's order."""
    return [
        LessonSummary(
            id=lesson.id, number=lesson.number, title=lesson.title, section=lesson.section,
            kind=lesson.kind,
        )
        for lesson in LESSONS.values()
    ]


@router.get("/{lesson_id}")
def read_lesson(lesson_id: str) -> LessonPublic:
    """One lesson with everything the page needs to play it."""
    lesson = LESSONS.get(lesson_id)
    if lesson is None:
        raise HTTPException(
            404, f"lesson {lesson_id!r} not found; expected one of: {', '.join(LESSONS)}"
        )
    return LessonPublic(
        id=lesson.id,
        number=lesson.number,
        title=lesson.title,
        section=lesson.section,
        kind=lesson.kind,
        text=lesson.text,
        config=lesson.config,
        instrument=lesson.instrument,
        try_this=[
            TryThisPublic(
                action=step.action, expect=step.expect, config=step.config,
                command=step.command, instrument=step.instrument,
            )
            for step in lesson.try_this
        ],
        demo=lesson_demo(lesson.id),
    )
