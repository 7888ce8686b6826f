"""The directory's running-quota grants (Directory.reserve_run), as a plain object: every
interleaving of two plays the ray test (test_scale_directory.py) can only sample.

Gold: the limit itself: never more grants standing for one owner than max_running_per_owner,
whatever order the calls of two replicas arrive in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from app.backends.ray_directory import Directory

LIMITS = {"max_running_per_owner": 2, "max_running_per_address": 30}
OWNER, ADDRESS = "o" * 64, "10.0.0.1"


def directory_with(*sessions: str) -> Directory:
    directory = Directory()
    places = {"max_sessions": 100, "max_sessions_per_owner": 10, "max_sessions_per_address": 10}
    for sid in sessions:
        directory.place(sid, OWNER, ADDRESS, [0, 1], places)
    return directory


def test_a_third_run_is_refused_and_a_stale_grant_is_dropped_only_once_landed() -> None:
    """Two grants stand: a third is refused; the grants it could drop are offered for a check
    only once their plays landed; a stale one (paused since) is dropped and the run granted."""
    directory = directory_with("s1", "s2", "s3")
    verdict, g1 = directory.reserve_run("s1", OWNER, ADDRESS, LIMITS, (0, 0))
    assert verdict == "granted"
    verdict, g2 = directory.reserve_run("s2", OWNER, ADDRESS, LIMITS, (1, 1))
    assert verdict == "granted"
    # Neither play said it landed: nothing to check, refused.
    assert directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (2, 2)) == (
        "refused",
        "this owner has 2 sessions training; max_running_per_owner = 2 (pause one first)",
    )
    directory.run_landed("s1", g1)
    directory.run_landed("s2", g2 + 100)  # another grant's landing: ignored
    verdict, suspects = directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (2, 2))
    assert (verdict, suspects) == ("check", {"s1": (g1, 0)})
    # s1 still trains: nothing stale, refused (and no second "check").
    assert directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (2, 2), {})[0] == "refused"
    # s1 paused since: dropped, granted.
    verdict, g3 = directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (1, 1), {"s1": g1})
    assert verdict == "granted" and g3 > g2


def test_a_grant_given_again_is_not_dropped_by_an_older_check() -> None:
    """A check that saw s1 paused arrives after s1 was granted again (its owner played it
    through another replica): the new grant stands and the run is refused."""
    directory = directory_with("s1", "s2", "s3")
    _, g1 = directory.reserve_run("s1", OWNER, ADDRESS, LIMITS, (0, 0))
    directory.run_landed("s1", g1)
    _, g2 = directory.reserve_run("s2", OWNER, ADDRESS, LIMITS, (1, 1))
    directory.run_landed("s2", g2)
    assert directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (2, 2))[0] == "check"
    _, again = directory.reserve_run("s1", OWNER, ADDRESS, LIMITS, (1, 1))  # played again
    assert directory.reserve_run("s3", OWNER, ADDRESS, LIMITS, (2, 2), {"s1": g1})[0] == "refused"
    assert again != g1


def test_shard_counts_cover_runs_a_restarted_directory_never_granted() -> None:
    """No grant stands (a new directory), but the shards report 2 of the owner's sessions
    training: refused."""
    directory = directory_with("s1")
    verdict, detail = directory.reserve_run("s1", OWNER, ADDRESS, LIMITS, (2, 0))
    assert verdict == "refused" and "max_running_per_owner = 2" in detail


@dataclass
class Play:
    """One replica's play: read the shards' count, reserve, check if asked and reserve again."""

    sid: str
    step: int = 0
    seen: int = 0
    answer: tuple[str, Any] = ("", None)


def test_two_replicas_plays_in_every_order_never_pass_the_limit() -> None:
    """s1 trains (landed). Two replicas each play one more session (s2, s3), each in four
    steps: read the shards' count, reserve, check and reserve again if asked, and (granted)
    the play lands on its shard, then says so. Every interleaving of those steps: exactly one
    of the two is granted (s1 keeps training: one slot is left)."""
    for order in set(itertools.permutations("aaaabbbb")):
        directory = directory_with("s1", "s2", "s3")
        _, g1 = directory.reserve_run("s1", OWNER, ADDRESS, LIMITS, (0, 0))
        directory.run_landed("s1", g1)
        training = {"s1"}  # what the shards run now
        plays = {"a": Play("s2"), "b": Play("s3")}
        for who in order:
            play = plays[who]
            play.step += 1
            if play.step == 1:
                play.seen = len(training - {play.sid})
            elif play.step == 2 or (play.step == 3 and play.answer[0] == "check"):
                stale = None
                if play.step == 3:
                    stale = {s: g for s, (g, _) in play.answer[1].items() if s not in training}
                counts = (play.seen, play.seen)
                play.answer = directory.reserve_run(play.sid, OWNER, ADDRESS, LIMITS, counts, stale)
            elif play.step == 4 and play.answer[0] == "granted":
                training.add(play.sid)
                directory.run_landed(play.sid, play.answer[1])
        verdicts = sorted(play.answer[0] for play in plays.values())
        assert verdicts == ["granted", "refused"], (order, verdicts)
