"""How a replica learns the jobs other replicas started (app/sessions/foreign_jobs.py: shared
backends), message by message, without Ray: a fake directory answers `job` as the directory
actor does.

Gold: the messages themselves (the record a replica keeps is the last JobPublic and the end it
was sent) and the directory's answer (the owner).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from app.sessions.jobs import JobBoard
from tests.conftest import make_settings


class Remote:
    """`actor.method.remote(...)`: an awaitable answer, counting the calls."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)

        async def reply() -> Any:
            return self.answer(*args) if callable(self.answer) else self.answer

        return reply()


@dataclass
class FakeDirectory:
    known: dict[str, tuple[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.job = Remote(lambda job_id: self.known.get(job_id))


@dataclass
class Worker:
    index: int
    alive: bool = True


@dataclass
class Backend:
    directory: FakeDirectory
    shared: bool = True


class Manager:
    def __init__(self, directory: FakeDirectory, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = make_settings()
        self.backend = Backend(directory)
        self.loop = loop
        self.workers = [Worker(0), Worker(1)]
        self.handles: dict[str, Any] = {}


def public(job_id: str, state: str = "running", done: int = 1) -> dict[str, Any]:
    return {
        "id": job_id,
        "kind": "step",
        "target": "s1",
        "state": state,
        "done": done,
        "total": 10,
        "detail": None,
    }


def test_a_job_of_another_replica_is_learned_from_its_progress() -> None:
    """Progress of an unknown job: one directory lookup, then a record with the directory's
    owner and shard and the latest JobPublic; its end (with the answer) arrives later and is
    kept. A job whose first message is its end (it ran under 0.25 s: answered at once by its
    replica) is not looked up; nor is one the directory did not know, a second time."""

    async def run() -> None:
        directory = FakeDirectory({"j1": ("o" * 64, 1)})
        board = JobBoard(Manager(directory, asyncio.get_running_loop()))  # type: ignore[arg-type]
        board.on_message(("job", public("j1", done=1), None, None))
        board.on_message(("job", public("j1", done=4), None, None))  # while it asks
        await asyncio.sleep(0.05)
        record = board.get("j1")
        assert (record.owner, record.worker.index, record.foreign) == ("o" * 64, 1, True)
        assert record.public == public("j1", done=4) and record.running
        end = (200, {"id": "s1", "epoch": 10})
        board.on_message(("job", public("j1", "done", 10), end, None))
        assert board.get("j1").end == end and board.get("j1").public["state"] == "done"
        assert len(directory.job.calls) == 1

        board.on_message(("job", public("j2", "done", 10), (200, {}), None))  # end only
        await asyncio.sleep(0.05)
        assert "j2" not in board.jobs and len(directory.job.calls) == 1

    asyncio.run(run())


def test_other_replicas_answers_are_bounded_in_bytes(monkeypatch: Any) -> None:
    """Ended jobs of other replicas whose answers (JSON bytes) pass FOREIGN_END_BYTES: the
    oldest go first; this replica's own records are never dropped for it."""
    from app.sessions import foreign_jobs

    monkeypatch.setattr(foreign_jobs, "FOREIGN_END_BYTES", 250)

    async def run() -> None:
        directory = FakeDirectory({f"j{i}": ("o" * 64, 0) for i in range(4)})
        board = JobBoard(Manager(directory, asyncio.get_running_loop()))  # type: ignore[arg-type]
        for i in range(4):
            board.on_message(("job", public(f"j{i}"), None, None))
        await asyncio.sleep(0.05)
        for i in range(4):
            board.on_message(("job", public(f"j{i}", "done", 10), (200, b"x" * 100), None))
        assert sorted(board.jobs) == ["j2", "j3"]  # 200 bytes kept of 400

    asyncio.run(run())


def test_a_job_the_directory_does_not_know_is_not_asked_about_again(monkeypatch: Any) -> None:
    """Unknown to the directory (started before it restarted): no record, and its later
    progress messages make no more lookups."""
    from app.sessions import foreign_jobs

    monkeypatch.setattr(foreign_jobs, "LEARN_TRIES", 2)

    async def run() -> None:
        directory = FakeDirectory()
        board = JobBoard(Manager(directory, asyncio.get_running_loop()))  # type: ignore[arg-type]
        board.on_message(("job", public("j9"), None, None))
        await asyncio.sleep(0.5)
        board.on_message(("job", public("j9", done=5), None, None))
        await asyncio.sleep(0.05)
        assert "j9" not in board.jobs and len(directory.job.calls) == 2

    asyncio.run(run())
