"""A stand-in for a worker's pipe, shared by the tests that drive a Worker in-process."""

from __future__ import annotations

from typing import Any


class Sink:
    """The worker's pipe: records what the worker sends, never has calls."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def send(self, message: tuple[Any, ...]) -> None:
        self.sent.append(message)

    def poll(self, timeout: float) -> bool:
        return False
