"""Jobs across replicas (issue 12): a job started through replica A is read, awaited and
cancelled through replica B.

Against the real Ray cluster and two replicas of conftest.py. A REST `step` of many epochs
outlasts job_wait_seconds (1 s), so A answers 202 with the job; the gold is the session's own
epoch afterwards (read through A) and A's view of the same job.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.scale.conftest import Cluster, create

pytestmark = pytest.mark.ray
EPOCHS = 6_000  # seconds of a 2-16-16-1 net on the spiral in a shard here: a 202, then a job
CONFIG = {"dataset": "spiral", "layers": [{"units": 16}, {"units": 16}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_step(base: str, sid: str, token: str) -> dict[str, Any]:
    """A REST step of EPOCHS epochs through `base`: the 202's job."""
    reply = httpx.post(
        f"{base}/api/sessions/{sid}/commands",
        json={"type": "step", "n": EPOCHS},
        headers=bearer(token),
        timeout=30,
    )
    assert reply.status_code == 202, reply.text
    assert reply.headers["Location"] == f"/api/jobs/{reply.json()['job']['id']}"
    job: dict[str, Any] = reply.json()["job"]
    return job


def test_a_job_started_through_a_is_polled_and_answered_through_b(ray_cluster: Cluster) -> None:
    """GET /api/jobs/{id} through B while the job runs (its owner only: 401 without a token,
    403 with another's), until it is done; its result through B is the step's answer, the
    session at epoch EPOCHS, as A reads it too."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, **CONFIG)
    sid, token = created["id"], created["owner_token"]
    other = create(a)["owner_token"]
    job = start_step(a, sid, token)
    url = f"{b}/api/jobs/{job['id']}"
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    while True:
        reply = httpx.get(url, headers=bearer(token), timeout=30)
        assert reply.status_code == 200, reply.text
        seen.append(reply.json())
        if seen[-1]["state"] != "running" or time.monotonic() > deadline:
            break
        if len(seen) == 1:
            assert httpx.get(url, timeout=30).status_code == 401
            assert httpx.get(url, headers=bearer(other), timeout=30).status_code == 403
            early = httpx.get(url + "/result", headers=bearer(token), timeout=30)
            assert early.status_code == 409, early.text
        time.sleep(0.2)
    assert seen[0]["state"] == "running" and seen[-1]["state"] == "done", seen[-1]
    assert seen[-1]["id"] == job["id"] and seen[-1]["kind"] == "step"
    assert seen[-1]["target"] == sid and seen[-1]["done"] == seen[-1]["total"]
    done = [entry["done"] for entry in seen]
    assert done == sorted(done)
    result = httpx.get(url + "/result", headers=bearer(token), timeout=30)
    assert result.status_code == 200, result.text
    assert result.json()["epoch"] == EPOCHS
    assert httpx.get(f"{a}/api/sessions/{sid}", timeout=30).json()["epoch"] == EPOCHS
    on_a = httpx.get(f"{a}/api/jobs/{job['id']}", headers=bearer(token), timeout=30).json()
    assert on_a == seen[-1]
    httpx.delete(f"{a}/api/sessions/{sid}", headers=bearer(token), timeout=30)


def test_a_job_started_through_a_is_cancelled_through_b(ray_cluster: Cluster) -> None:
    """DELETE /api/jobs/{id} through B stops the job A started: B answers it cancelled, A
    reads it cancelled, and the session stopped short of EPOCHS (read through A)."""
    a, b = (r.url for r in ray_cluster.replicas)
    created = create(a, **CONFIG)
    sid, token = created["id"], created["owner_token"]
    job = start_step(a, sid, token)
    url = f"{b}/api/jobs/{job['id']}"
    deadline = time.monotonic() + 10
    while httpx.get(url, headers=bearer(token), timeout=30).status_code == 404:
        assert time.monotonic() < deadline, "B never heard of the job"
        time.sleep(0.1)
    cancelled = httpx.delete(url, headers=bearer(token), timeout=30)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["state"] == "cancelled"
    deadline = time.monotonic() + 10
    while True:
        on_a = httpx.get(f"{a}/api/jobs/{job['id']}", headers=bearer(token), timeout=30).json()
        if on_a["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert on_a["state"] == "cancelled"
    epoch = httpx.get(f"{a}/api/sessions/{sid}", timeout=30).json()["epoch"]
    assert 0 < epoch < EPOCHS
    httpx.delete(f"{a}/api/sessions/{sid}", headers=bearer(token), timeout=30)


RACE = {
    "config": {"dataset": "xor", "n_samples": 40, "layers": [{"units": 3}], "grid_resolution": 6},
    "racers": [{"optimizer": "sgd", "learning_rate": 0.1}, {"optimizer": "adam"}],
}


def test_a_race_created_through_a_is_read_stepped_and_deleted_through_b(
    ray_cluster: Cluster,
) -> None:
    """A race made through A: B reads it (the same answer as A's), its owner steps it through
    B (A then reads the new epochs) and deletes it through B (then 404 on both). Gold: A's own
    answer for the race."""
    a, b = (r.url for r in ray_cluster.replicas)
    made = httpx.post(a + "/api/races", json=RACE, timeout=30)
    assert made.status_code == 201, made.text
    race_id, token = made.json()["id"], made.json()["owner_token"]
    on_a = httpx.get(f"{a}/api/races/{race_id}", timeout=30)
    on_b = httpx.get(f"{b}/api/races/{race_id}", timeout=30)
    assert on_b.status_code == 200, on_b.text
    assert on_b.json() == on_a.json() and on_a.json()["epoch"] == 0
    refused = httpx.post(f"{b}/api/races/{race_id}/step", json={"epochs": 30}, timeout=30)
    assert refused.status_code == 401, refused.text
    stepped = httpx.post(
        f"{b}/api/races/{race_id}/step", json={"epochs": 30}, headers=bearer(token), timeout=30
    )
    assert stepped.status_code == 200, stepped.text
    assert httpx.get(f"{a}/api/races/{race_id}", timeout=30).json()["epoch"] == 30
    deleted = httpx.delete(f"{b}/api/races/{race_id}", headers=bearer(token), timeout=30)
    assert deleted.status_code == 204, deleted.text
    for base in (a, b):
        assert httpx.get(f"{base}/api/races/{race_id}", timeout=30).status_code == 404
