"""The directory's job budgets (Directory.reserve_job, reserve_race, reserve_replay,
memory_left), as a plain object: what the ray test (test_scale_job_budgets.py) can only sample,
and what a restarted directory reads back from the database (revision 0004).

Gold: the limits themselves and the one-process budgets' exact 429 details
(app/sessions/job_budgets.py LocalBudgets, tests/api/test_jobs.py); a second Directory on the
same database (a restarted actor) answering as the first.
"""

from __future__ import annotations

from typing import Any

from app.backends.ray_directory import Directory
from app.storage import Storage

OWNER, OTHER = "o" * 64, "p" * 64
LIMITS = {
    "max_sessions": 10,
    "max_races_per_owner": 2,
    "max_replays_per_owner": 1,
    "max_job_memory_bytes_per_owner": 1000,
    "max_job_memory_bytes": 5000,
}
JOBS = (
    "this owner runs 2 jobs; max_jobs_per_owner = 2 (wait for one to end, or cancel it with "
    "DELETE /api/jobs/{id})"
)


def test_job_slots_are_freed_by_their_shards_report_or_restart() -> None:
    """Two running jobs of an owner (on two shards, from any replica): a third is refused with
    the exact detail, another owner's is not; the end a shard reports frees a slot, and so
    does the restart of a shard (its jobs are gone); a forgotten job frees its slot too."""
    directory = Directory()
    assert directory.reserve_job("j1", OWNER, 0, 2, 600.0, 1200.0) is None
    assert directory.reserve_job("j2", OWNER, 1, 2, 600.0, 1200.0) is None
    assert directory.reserve_job("j3", OWNER, 0, 2, 600.0, 1200.0) == JOBS
    assert directory.reserve_job("k1", OTHER, 0, 2, 600.0, 1200.0) is None
    directory.reported(0, ["j1"], [])
    assert directory.job("j1") == (OWNER, 0)  # still found (GET /api/jobs/{id})
    assert directory.reserve_job("j3", OWNER, 0, 2, 600.0, 1200.0) is None
    assert directory.reserve_job("j4", OWNER, 0, 2, 600.0, 1200.0) == JOBS
    directory.shard_started(0)  # j3 ran there
    assert directory.reserve_job("j4", OWNER, 1, 2, 600.0, 1200.0) is None
    directory.job_forget("j4")
    assert directory.reserve_job("j5", OWNER, 1, 2, 600.0, 1200.0) is None
    directory.job_started("j5", OWNER, 1, 1200.0)  # a late registration keeps it running
    assert directory.reserve_job("j6", OWNER, 1, 2, 600.0, 1200.0) == JOBS


def test_races_replays_and_bytes_count_and_survive_a_restart(storage: Storage) -> None:
    """Races and a replay with the bytes their shards reported: max_races_per_owner,
    max_replays_per_owner and max_job_memory_bytes_per_owner refuse with the exact details; a
    second Directory on the same database (a restart) refuses the same and finds the races;
    deleting a race and the replay's session, and a shard's restart, drop them there too."""
    url = storage.engine.url.render_as_string(hide_password=False)
    made: list[Directory] = []

    def directory() -> Directory:
        made.append(Directory(url))  # Ray (re)starting the actor: read back from the database
        return made[-1]

    try:
        check(directory)
    finally:
        for each in made:
            each.engine.dispose()


def check(directory: Any) -> None:
    first = directory()
    assert first.reserve_race("r1", OWNER, 0, LIMITS) == (
        1000,
        "this owner's races and replays hold 0 bytes; max_job_memory_bytes_per_owner = 1000",
    )
    first.race_created("r1", OWNER, 0, 300)
    assert first.reserve_race("r2", OWNER, 1, LIMITS) == (
        700,
        "this owner's races and replays hold 300 bytes; max_job_memory_bytes_per_owner = 1000",
    )
    first.race_created("r2", OWNER, 1, 300)
    first.reported(1, ["j"], [("race", "r2", 400, True)])  # grew by a step
    races = "this owner has 2 races; max_races_per_owner = 2 (delete one first)"
    assert first.reserve_race("r3", OWNER, 0, LIMITS) == races
    assert first.reserve_replay("s1", OWNER, 0, LIMITS) == (
        300,
        "this owner's races and replays hold 700 bytes; max_job_memory_bytes_per_owner = 1000",
        True,
    )
    first.reported(0, ["j2"], [("replay", "s1", 250, True)])
    replays = (
        "this owner has 1 replays; max_replays_per_owner = 1 (delete a session to drop its "
        "replay)"
    )
    assert first.reserve_replay("s2", OWNER, 1, LIMITS) == replays
    full = (
        "this owner's races and replays hold 950 bytes; max_job_memory_bytes_per_owner = 1000"
    )
    assert first.reserve_replay("s1", OWNER, 0, LIMITS) == (300, full.replace("950", "700"),
                                                            False)  # itself not counted
    assert first.memory_left(OWNER, LIMITS) == (50, full)

    again = directory()
    assert again.race("r1") == (OWNER, 0) and again.race("r2") == (OWNER, 1)
    assert again.reserve_race("r3", OWNER, 0, LIMITS) == races
    assert again.reserve_replay("s2", OWNER, 1, LIMITS) == replays
    assert again.memory_left(OWNER, LIMITS) == (50, full)
    again.race_deleted("r1")
    again.release("s1")  # the replay's session was deleted
    again.shard_started(1)  # r2's shard restarted: r2 is gone
    third = directory()
    assert third.race("r1") is None and third.race("r2") is None
    assert third.memory_left(OWNER, LIMITS) == (
        1000,
        "this owner's races and replays hold 0 bytes; max_job_memory_bytes_per_owner = 1000",
    )
