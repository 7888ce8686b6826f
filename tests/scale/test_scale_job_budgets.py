"""The job budgets across replicas (issue 12): max_jobs_per_owner, max_races_per_owner,
max_replays_per_owner and max_job_memory_bytes_per_owner are decided by the directory actor over
every replica's jobs, races and replays (app/sessions/job_budgets.py), not by each replica.

Two replicas of their own (C and D) join conftest.py's Ray cluster and namespace (the same
shards and directory as A and B) with small limits, so these tests need no big races:
max_jobs_per_owner = 2, max_races_per_owner = 3, max_replays_per_owner = 2,
max_job_memory_bytes_per_owner = 30000 (a 40-point xor race of two racers reports 8688 bytes,
a 100-point one 11568). A replica counting only its own would let each owner have the limit
through C and as much again through D; each test below fails that way. Gold: the limit itself
and the exact 429 detail of the one-process budgets (tests/api/test_jobs.py).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.scale.conftest import Cluster, Replica, create, free_port

pytestmark = pytest.mark.ray
LIMITS = {
    "NN_PLAYGROUND_MAX_JOBS_PER_OWNER": "2",
    "NN_PLAYGROUND_MAX_RACES_PER_OWNER": "3",
    "NN_PLAYGROUND_MAX_REPLAYS_PER_OWNER": "2",
    "NN_PLAYGROUND_MAX_JOB_MEMORY_BYTES_PER_OWNER": "30000",
    "NN_PLAYGROUND_MAX_RUNNING_PER_OWNER": "10",  # steps train: not the limit tested here
    # A job's 202 at once: before the other replica hears of the job from the shard (a
    # replica counted the jobs it heard of, ~0.25 s late).
    "NN_PLAYGROUND_JOB_WAIT_SECONDS": "0",
}
SLOW = {"dataset": "spiral", "layers": [{"units": 16}, {"units": 16}]}  # a long step: a job
SMALL = {"dataset": "xor", "n_samples": 40, "layers": [{"units": 3}], "grid_resolution": 6}
RACERS = [{"optimizer": "sgd", "learning_rate": 0.1}, {"optimizer": "adam"}]
RACE = {"config": SMALL, "racers": RACERS}  # 8688 bytes
BIG_RACE = {"config": {**SMALL, "n_samples": 100}, "racers": RACERS}  # 11568 bytes
JOBS = (
    "this owner runs 2 jobs; max_jobs_per_owner = 2 (wait for one to end, or cancel it with "
    "DELETE /api/jobs/{id})"
)


@pytest.fixture(scope="module")
def pair(ray_cluster: Cluster) -> Iterator[list[Replica]]:
    """Replicas C and D (see the module docstring), stopped at the end."""
    env = {**ray_cluster.replicas[0].env, **LIMITS}
    replicas = [
        Replica(free_port(), env, ray_cluster.directory / f"replica-budget-{name}.log")
        for name in ("c", "d")
    ]
    try:
        for replica in replicas:
            replica.start()
        for replica in replicas:
            replica.wait_ready()
        yield replicas
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.kill()
            if replica.output is not None:
                replica.output.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(url: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
    """POST as `token`'s owner, waiting up to 5 s for the token to reach this replica (replicas
    read the directory's owner list every 0.5 s)."""
    headers = bearer(token) if token else {}
    deadline = time.monotonic() + 5
    while True:
        reply = httpx.post(url, headers=headers, timeout=30, **kwargs)
        if reply.status_code != 401 or time.monotonic() > deadline:
            return reply
        time.sleep(0.1)


def refused(reply: httpx.Response, detail: str) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.json()["detail"] == detail
    assert int(reply.headers["Retry-After"]) >= 1


def make_race(base: str, token: str | None, body: dict[str, Any] = RACE) -> tuple[str, str]:
    reply = post(base + "/api/races", token, json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"], reply.json()["owner_token"]


def step(base: str, sid: str, token: str) -> httpx.Response:
    """A REST step of 100,000 epochs (max_step_epochs: a job that runs until cancelled)."""
    return post(f"{base}/api/sessions/{sid}/commands", token, json={"type": "step", "n": 100_000})


def step_when_free(base: str, sid: str, token: str) -> httpx.Response:
    """A step right after a job's end: the end reaches the directory from the job's shard
    (not from the request that ended it), within a few ms; a 429 meanwhile is retried."""
    deadline = time.monotonic() + 5
    while (reply := step(base, sid, token)).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    return reply


def two_jobs(
    c: str, d: str, more_through: str
) -> tuple[str, list[str], httpx.Response, httpx.Response]:
    """A new owner with three slow sessions (the first made through `c`, two more through
    `more_through`), and a job on the first through `c` and on the second through `d`: (token,
    session ids, the two 202s)."""
    first = create(c, **SLOW)
    token = first["owner_token"]
    sids = [first["id"]] + [post(more_through + "/api/sessions", token, json=SLOW).json()["id"]
                            for _ in range(2)]
    on_c = step(c, sids[0], token)
    on_d = step(d, sids[1], token)
    assert on_c.status_code == 202 and on_d.status_code == 202, (on_c.text, on_d.text)
    return token, sids, on_c, on_d


def cancel(base: str, job_id: str, token: str) -> None:
    """Cancel a job through `base` (which may first have to hear of it from the shard)."""
    deadline = time.monotonic() + 10
    while True:
        reply = httpx.delete(f"{base}/api/jobs/{job_id}", headers=bearer(token), timeout=30)
        if reply.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 200, reply.text


def delete(base: str, path: str, token: str) -> None:
    reply = httpx.delete(f"{base}{path}", headers=bearer(token), timeout=30)
    assert reply.status_code == 204, reply.text


def test_max_jobs_per_owner_holds_across_replicas(pair: list[Replica]) -> None:
    """An owner runs one job through C and one through D: a third is refused through either
    (the exact 429); once one is cancelled, one more starts."""
    c, d = (r.url for r in pair)
    token, sids, on_c, on_d = two_jobs(c, d, c)
    refused(step(c, sids[2], token), JOBS)
    refused(step(d, sids[2], token), JOBS)
    cancel(d, on_c.json()["job"]["id"], token)
    again = step_when_free(c, sids[2], token)
    assert again.status_code == 202, again.text
    cancel(c, on_d.json()["job"]["id"], token)
    cancel(c, again.json()["job"]["id"], token)
    for sid in sids:
        delete(c, f"/api/sessions/{sid}", token)


def test_jobs_reserved_at_the_same_instant_through_two_replicas_never_pass_the_limit(
    pair: list[Replica],
) -> None:
    """Three steps of one owner sent at the same instant (two through C, one through D), in 4
    rounds: exactly two are 202 and one is the 429 each time."""
    c, d = (r.url for r in pair)
    first = create(c, **SLOW)
    token = first["owner_token"]
    sids = [first["id"]] + [post(d + "/api/sessions", token, json=SLOW).json()["id"]
                            for _ in range(2)]
    outcomes = []
    for _ in range(4):
        replies: dict[str, httpx.Response] = {}
        barrier = threading.Barrier(3)

        def go(base: str, sid: str, replies: dict[str, httpx.Response] = replies,
               barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            replies[sid] = step(base, sid, token)

        threads = [threading.Thread(target=go, args=(base, sid))
                   for base, sid in zip((c, d, c), sids, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        codes = sorted(reply.status_code for reply in replies.values())
        outcomes.append(codes)
        for reply in replies.values():
            if reply.status_code == 429:
                refused(reply, JOBS)
            else:
                cancel(c, reply.json()["job"]["id"], token)
    assert outcomes == [[202, 202, 429]] * 4, outcomes
    for sid in sids:
        delete(c, f"/api/sessions/{sid}", token)


def test_max_races_per_owner_holds_across_replicas(pair: list[Replica]) -> None:
    """Three races of one owner made through C, D and C: a fourth is refused through either;
    once one is deleted (through the other replica), one more is made."""
    c, d = (r.url for r in pair)
    first, token = make_race(c, None)
    races = [first, make_race(d, token)[0], make_race(c, token)[0]]
    detail = "this owner has 3 races; max_races_per_owner = 3 (delete one first)"
    refused(post(d + "/api/races", token, json=RACE), detail)
    refused(post(c + "/api/races", token, json=RACE), detail)
    delete(d, f"/api/races/{races[0]}", token)
    races[0] = make_race(c, token)[0]
    for race_id in races:
        delete(d, f"/api/races/{race_id}", token)


def test_max_replays_per_owner_holds_across_replicas(pair: list[Replica]) -> None:
    """Replays of two of an owner's sessions opened through C and D: a third session's is
    refused through either; the same session's again is no new replay; deleting a session
    (through the other replica) drops its replay."""
    c, d = (r.url for r in pair)
    first = create(c, **SMALL)
    token = first["owner_token"]
    sids = [first["id"]] + [post(d + "/api/sessions", token, json=SMALL).json()["id"]
                            for _ in range(2)]

    def replay(base: str, sid: str) -> httpx.Response:
        """Open a replay (a job that ends at once; 202 as job_wait_seconds = 0) and wait for
        its end; a 429 of max_jobs_per_owner (the ends of the last two replays' jobs not yet
        at the directory) is retried."""
        deadline = time.monotonic() + 5
        while True:
            reply = post(f"{base}/api/sessions/{sid}/timetravel", token)
            busy = reply.status_code == 429 and "max_jobs_per_owner" in reply.text
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if reply.status_code == 202:
            url = f"{base}/api/jobs/{reply.json()['job']['id']}"
            while (job := httpx.get(url, headers=bearer(token), timeout=30).json())[
                "state"
            ] == "running" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert job["state"] == "done", job
        return reply

    assert replay(c, sids[0]).status_code in (201, 202)
    assert replay(d, sids[1]).status_code in (201, 202)
    detail = ("this owner has 2 replays; max_replays_per_owner = 2 (delete a session to drop "
              "its replay)")
    refused(replay(c, sids[2]), detail)
    refused(replay(d, sids[2]), detail)
    assert replay(c, sids[1]).status_code in (201, 202)  # made through D: the same replay
    delete(d, f"/api/sessions/{sids[0]}", token)
    dropped = replay(c, sids[2])
    assert dropped.status_code in (201, 202), dropped.text  # the deleted session's is gone
    for sid in sids[1:]:
        delete(c, f"/api/sessions/{sid}", token)


def test_the_memory_budget_holds_across_replicas(pair: list[Replica]) -> None:
    """Races of 11568 bytes made through C and D (23136 held): a third does not fit the 30000
    bytes through either; its 429 names the bytes held and the limit."""
    c, d = (r.url for r in pair)
    first, token = make_race(c, None, BIG_RACE)
    second, _ = make_race(d, token, BIG_RACE)
    detail = ("a race of ~11568 bytes does not fit: this owner's races and replays hold 23136 "
              "bytes; max_job_memory_bytes_per_owner = 30000")
    refused(post(c + "/api/races", token, json=BIG_RACE), detail)
    refused(post(d + "/api/races", token, json=BIG_RACE), detail)
    for race_id in (first, second):
        delete(c, f"/api/races/{race_id}", token)


def directory_pid(cluster: Cluster, timeout: float = 30.0) -> int:
    """The directory actor's process id (waiting while Ray restarts it)."""
    ray = cluster.ray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            directory = ray.get_actor("nnpg-directory")
            return int(ray.get(directory.stats.remote(), timeout=5)["pid"])
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_the_budgets_survive_a_killed_directory(
    pair: list[Replica], ray_cluster: Cluster
) -> None:
    """kill -9 of the directory's process after an owner made 3 races (through C and D) and
    started a job: the restarted directory still counts the races (read back from the
    database: a fourth is refused) and finds them (read through the replica that did not make
    them); it asks the shards for their running jobs, so the job counts again (one more job
    starts, a third is refused)."""
    c, d = (r.url for r in pair)
    first, token = make_race(c, None)
    races = [first, make_race(d, token)[0], make_race(c, token)[0]]
    sids = [post(c + "/api/sessions", token, json=SLOW).json()["id"] for _ in range(2)]
    job = step(c, sids[0], token)
    assert job.status_code == 202, job.text
    ray = ray_cluster.ray()
    before = directory_pid(ray_cluster)
    os.kill(before, signal.SIGKILL)
    detail = "this owner has 3 races; max_races_per_owner = 3 (delete one first)"
    refused(post(d + "/api/races", token, json=RACE), detail)  # waits for the restart
    assert directory_pid(ray_cluster) != before
    assert httpx.get(f"{d}/api/races/{races[2]}", timeout=30).status_code == 200
    directory = ray.get_actor("nnpg-directory")
    deadline = time.monotonic() + 10  # the shards' answers come a moment after the restart
    while ray.get(directory.job.remote(job.json()["job"]["id"])) is None:
        assert time.monotonic() < deadline, "the restarted directory never heard of the job"
        time.sleep(0.1)
    second = step(d, sids[1], token)
    assert second.status_code == 202, second.text
    third = post(d + "/api/sessions", token, json=SLOW).json()["id"]
    refused(step(d, third, token), JOBS)
    for running in (job, second):
        cancel(d, running.json()["job"]["id"], token)
    for race_id in races:
        delete(d, f"/api/races/{race_id}", token)
    for sid in (*sids, third):
        delete(d, f"/api/sessions/{sid}", token)


def test_a_restarted_shard_loses_its_jobs_and_frees_their_slots(
    pair: list[Replica], ray_cluster: Cluster
) -> None:
    """kill -9 of the shard running an owner's job: the job reads "failed" through the replica
    that started it (its end will never come), and its slot is free for the owner's next job
    (the new incarnation told the directory; the dead job's entry would otherwise hold it
    for max_job_seconds)."""
    c, d = (r.url for r in pair)
    first = create(c, **SLOW)
    token = first["owner_token"]
    sids = [first["id"]] + [post(d + "/api/sessions", token, json=SLOW).json()["id"]
                            for _ in range(2)]
    ray = ray_cluster.ray()
    shard = ray_cluster.shard_of(sids[0])
    assert ray.get(shard.flush.remote(5.0)) is True  # the sessions come back after the kill
    lost = step(c, sids[0], token)
    other = step(d, sids[1], token)
    assert lost.status_code == 202 and other.status_code == 202, (lost.text, other.text)
    refused(step(d, sids[2], token), JOBS)
    os.kill(ray.get(shard.stats.remote())["pid"], signal.SIGKILL)
    url = f"{c}/api/jobs/{lost.json()['job']['id']}"
    deadline = time.monotonic() + 30
    while (job := httpx.get(url, headers=bearer(token), timeout=30).json())[
        "state"
    ] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job["state"] == "failed", job
    deadline = time.monotonic() + 30
    while (third := step(d, sids[2], token)).status_code in (429, 503) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)  # 503 while its shard restarts, if it is the same one
    assert third.status_code == 202, third.text
    for running in (other, third):
        if running.json()["job"]["target"] != sids[0]:
            httpx.delete(f"{d}/api/jobs/{running.json()['job']['id']}", headers=bearer(token),
                         timeout=30)
    for sid in sids:
        delete(d, f"/api/sessions/{sid}", token)


def test_a_job_ending_frees_its_slot_when_its_replica_died(pair: list[Replica]) -> None:
    """An owner's two jobs, started through C and D; C is killed: D still refuses a third (the
    dead replica's job counts), and once C's job ends (cancelled through D: its end comes from
    the shard) D starts one more. (The last test of the module: C stays down.)"""
    c_replica, d_replica = pair
    c, d = c_replica.url, d_replica.url
    token, sids, on_c, on_d = two_jobs(c, d, d)
    refused(step(d, sids[2], token), JOBS)
    c_replica.kill()
    refused(step(d, sids[2], token), JOBS)  # the dead replica's job counts
    cancel(d, on_c.json()["job"]["id"], token)  # its end comes from the shard
    third = step_when_free(d, sids[2], token)
    assert third.status_code == 202, third.text
    for job in (on_d, third):
        cancel(d, job.json()["job"]["id"], token)
    for sid in sids:
        delete(d, f"/api/sessions/{sid}", token)
