"""Quotas per owner and per client address: 429, Retry-After and a detail naming the setting.

Every test runs on both backends (tests/conftest.py BOTH_BACKENDS): `[local]`, where the
manager counts its own sessions, and `[ray]`, where the directory and the shards of a real Ray
cluster count every replica's (the ray step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

BOTH_BACKENDS = True
RETRY_AFTER = 3
QuotaClient = Callable[..., Iterator[TestClient]]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def quota_client(new_app: Callable[..., FastAPI]) -> QuotaClient:
    """quota_client(**limits): a TestClient of an app with those limits, on the test's backend
    (iterate it once: `for client in quota_client(...)`)."""

    def make(**limits: Any) -> Iterator[TestClient]:
        with TestClient(new_app(quota_retry_after_seconds=RETRY_AFTER, **limits)) as client:
            yield client

    return make


def create(client: TestClient, token: str | None = None) -> Any:
    return client.post("/api/sessions", json={}, headers=bearer(token) if token else {})


def assert_quota(response: Any, setting: str, value: int) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(RETRY_AFTER)
    assert f"{setting} = {value}" in response.json()["detail"]


def play(client: TestClient, sid: str, token: str, kind: str = "play") -> Any:
    body = {"type": kind} if kind != "step" else {"type": "step", "n": 2}
    return client.post(f"/api/sessions/{sid}/commands", json=body, headers=bearer(token))


def test_sessions_per_owner(quota_client: QuotaClient) -> None:
    """An owner's third session is refused; another owner still gets one; a delete frees one."""
    for client in quota_client(max_sessions_per_owner=2):
        first = create(client).json()
        token = first["owner_token"]
        assert create(client, token).status_code == 201
        assert_quota(create(client, token), "max_sessions_per_owner", 2)
        assert create(client).status_code == 201  # a new owner
        client.delete(f"/api/sessions/{first['id']}", headers=bearer(token))
        assert create(client, token).status_code == 201


def test_sessions_per_address(quota_client: QuotaClient) -> None:
    """New tokens do not get round the per-address quota; another address is not affected."""
    for client in quota_client(max_sessions_per_address=3):
        for _ in range(3):
            assert create(client).status_code == 201
        assert_quota(create(client), "max_sessions_per_address", 3)
        client._transport.client = ("10.0.0.2", 50000)  # type: ignore[attr-defined]
        assert create(client).status_code == 201


@pytest.mark.parametrize("kind", ["play", "step"])
def test_running_per_owner(quota_client: QuotaClient, kind: str) -> None:
    """play/step beyond max_running_per_owner: 429; a paused one frees the slot at once (a
    client that pauses one session and plays another is never refused, however quickly)."""
    for client in quota_client(max_running_per_owner=1):
        first = create(client).json()
        token = first["owner_token"]
        second = create(client, token).json()
        assert play(client, first["id"], token).json()["status"] == "running"
        assert_quota(play(client, second["id"], token, kind), "max_running_per_owner", 1)
        assert client.get(f"/api/sessions/{second['id']}").json()["status"] == "paused"
        # Already running: a play is no new run, so not refused.
        assert play(client, first["id"], token).status_code == 200
        play(client, first["id"], token, "pause")
        assert play(client, second["id"], token, kind).status_code == 200
        # Taking turns, with no wait between a pause and the next play.
        play(client, second["id"], token, "pause")
        for _ in range(4):
            for session in (first, second):
                assert play(client, session["id"], token).status_code == 200
                assert play(client, session["id"], token, "pause").json()["status"] == "paused"


def test_a_run_that_ended_by_itself_frees_its_slot(quota_client: QuotaClient) -> None:
    """A REST step ends paused: the quota counts what trains now, not what once started (at
    once: the next play comes right after the step's answer, four times over)."""
    for client in quota_client(max_running_per_owner=1):
        first = create(client).json()
        token = first["owner_token"]
        second = create(client, token).json()
        for _ in range(4):
            assert play(client, first["id"], token, "step").json()["status"] == "paused"
            assert play(client, second["id"], token).json()["status"] == "running"
            assert play(client, second["id"], token, "pause").json()["status"] == "paused"


def test_running_per_address(quota_client: QuotaClient) -> None:
    """Two owners at one address share max_running_per_address."""
    for client in quota_client(max_running_per_address=1):
        a, b = create(client).json(), create(client).json()
        assert play(client, a["id"], a["owner_token"]).status_code == 200
        assert_quota(play(client, b["id"], b["owner_token"]), "max_running_per_address", 1)


def test_max_sessions_has_a_retry_after_too(quota_client: QuotaClient) -> None:
    """The global cap names max_sessions and says when to retry."""
    for client in quota_client(max_sessions=1):
        assert create(client).status_code == 201
        assert_quota(create(client), "max_sessions", 1)


def test_concurrent_plays_do_not_overshoot_the_running_quota(quota_client: QuotaClient) -> None:
    """Plays in flight count as running: eight at once leave at most the quota training."""
    for client in quota_client(max_running_per_owner=2):
        token = create(client).json()["owner_token"]
        sids = [create(client, token).json()["id"] for _ in range(7)]
        sids += [
            s["id"]
            for s in client.get("/api/sessions", headers=bearer(token)).json()
            if s["id"] not in sids
        ]
        with ThreadPoolExecutor(len(sids)) as pool:
            replies = list(pool.map(partial(play, client, token=token), sids))
        statuses = [reply.status_code for reply in replies]
        assert set(statuses) <= {200, 429} and 1 <= statuses.count(200) <= 2, statuses
        running = [
            s
            for s in client.get("/api/sessions", headers=bearer(token)).json()
            if s["status"] == "running"
        ]
        assert len(running) == statuses.count(200)
