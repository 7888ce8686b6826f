"""The directory actor with real processes (issue 12): it survives kill -9, and it decides the
running quota atomically for plays arriving through two replicas at the same instant.

Against the real Ray cluster and two replicas of conftest.py (max_sessions_per_owner = 3,
max_running_per_owner = 2 there).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
import pytest

from tests.scale.conftest import Cluster, create

pytestmark = pytest.mark.ray


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create_as(base: str, token: str, **config: Any) -> dict[str, Any]:
    """Create as `token`'s owner, waiting up to 5 s for the token to reach this replica's owner
    registry (replicas read the directory's owner list every 0.5 s)."""
    deadline = time.monotonic() + 5
    while True:
        reply = httpx.post(base + "/api/sessions", json=config, headers=bearer(token), timeout=30)
        if reply.status_code != 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reply.status_code == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


def directory_stats(cluster: Cluster, timeout: float = 30.0) -> dict[str, Any]:
    """The directory's stats, waiting (while Ray restarts it) up to `timeout`."""
    ray = cluster.ray()
    deadline = time.monotonic() + timeout
    while True:
        try:
            directory = ray.get_actor("nnpg-directory")
            stats: dict[str, Any] = ray.get(directory.stats.remote(), timeout=5)
            return stats
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_killed_directory_comes_back_from_the_database(ray_cluster: Cluster) -> None:
    """kill -9 of the directory actor's process: Ray restarts it and it rebuilds its map from
    the database. Sessions that one replica never saw are found through it, the owner's token
    works there, a create during the restart succeeds, and max_sessions_per_owner = 3 still
    counts the sessions placed before the kill (a replica-local count on A would see 2).
    Gold: the directory's process id changed, and each session's own id and epoch as read
    through the replica that created it."""
    a, b = (r.url for r in ray_cluster.replicas)
    before = directory_stats(ray_cluster)
    assert before["persistent"] is True, "the replicas pass the database URL to the directory"
    first = create(a, dataset="xor")
    token = first["owner_token"]
    second = create_as(a, token, dataset="circle")
    third = create_as(b, token, dataset="xor")
    lone = create(a, dataset="gauss")
    stepped = httpx.post(
        f"{a}/api/sessions/{lone['id']}/commands",
        json={"type": "step", "n": 5},
        headers=bearer(lone["owner_token"]),
        timeout=30,
    )
    assert stepped.status_code == 200 and stepped.json()["epoch"] == 5

    os.kill(before["pid"], signal.SIGKILL)
    during = httpx.post(b + "/api/sessions", json={"dataset": "xor"}, timeout=60)
    assert during.status_code == 201, during.text  # waited for the restart, not a 500
    after = directory_stats(ray_cluster)
    assert after["pid"] != before["pid"] and after["persistent"] is True

    for session in (first, second, lone):  # B never saw these: it asks the directory
        reply = httpx.get(f"{b}/api/sessions/{session['id']}", timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["id"] == session["id"]
    assert httpx.get(f"{b}/api/sessions/{lone['id']}", timeout=30).json()["epoch"] == 5
    paused = httpx.post(
        f"{b}/api/sessions/{first['id']}/commands",
        json={"type": "pause"},
        headers=bearer(token),
        timeout=30,
    )
    assert paused.status_code == 200, paused.text  # the owner's token holds on B
    refused = httpx.post(a + "/api/sessions", json={}, headers=bearer(token), timeout=30)
    assert refused.status_code == 429, refused.text
    assert "this owner has 3 live sessions; max_sessions_per_owner = 3" in refused.json()["detail"]
    assert "Retry-After" in refused.headers
    on_a = httpx.get(f"{a}/api/sessions/{third['id']}", timeout=30)  # A never saw it
    assert on_a.status_code == 200 and on_a.json()["id"] == third["id"]

    for session, owner_token in (
        (first, token),
        (second, token),
        (third, token),
        (lone, lone["owner_token"]),
        (during.json(), during.json()["owner_token"]),
    ):
        deleted = httpx.delete(
            f"{a}/api/sessions/{session['id']}", headers=bearer(owner_token), timeout=30
        )
        assert deleted.status_code == 204, deleted.text


def test_concurrent_plays_through_two_replicas_respect_the_running_quota(
    ray_cluster: Cluster,
) -> None:
    """max_running_per_owner = 2: with one session of the owner training, two plays of its two
    other sessions sent at the same instant, one through each replica, never both pass: in
    each of 8 rounds exactly one is 200 and the other 429 naming the setting, and at most two
    sessions train. Gold: the sessions' own status, read back through the other replica."""
    a, b = (r.url for r in ray_cluster.replicas)
    first = create(a, dataset="xor", speed=5)
    token = first["owner_token"]
    second = create_as(a, token, dataset="xor", speed=5)
    third = create_as(b, token, dataset="xor", speed=5)
    auth = bearer(token)

    def command(base: str, sid: str, kind: str) -> httpx.Response:
        return httpx.post(
            f"{base}/api/sessions/{sid}/commands", json={"type": kind}, headers=auth, timeout=30
        )

    assert command(a, first["id"], "play").json()["status"] == "running"
    outcomes: list[tuple[int, int]] = []
    for _ in range(8):
        replies: dict[str, httpx.Response] = {}
        barrier = threading.Barrier(2)

        def play(
            base: str,
            sid: str,
            replies: dict[str, httpx.Response] = replies,
            barrier: threading.Barrier = barrier,
        ) -> None:
            barrier.wait()
            replies[sid] = command(base, sid, "play")

        threads = [
            threading.Thread(target=play, args=(a, second["id"])),
            threading.Thread(target=play, args=(b, third["id"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        codes = sorted(reply.status_code for reply in replies.values())
        outcomes.append((codes[0], codes[1]))
        for reply in replies.values():
            if reply.status_code == 429:
                assert "max_running_per_owner = 2" in reply.json()["detail"]
        statuses = [
            httpx.get(f"{base}/api/sessions/{s['id']}", timeout=30).json()["status"]
            for base, s in ((b, first), (b, second), (a, third))
        ]
        assert statuses.count("running") <= 2, statuses
        for sid in (second["id"], third["id"]):
            assert command(a, sid, "pause").status_code == 200
    assert outcomes == [(200, 429)] * 8, outcomes
    for session in (first, second, third):
        httpx.delete(f"{a}/api/sessions/{session['id']}", headers=auth, timeout=30)
