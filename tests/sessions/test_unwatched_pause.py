"""A running session that nobody watches or calls is paused; a new watcher resumes it.

A closed tab used to train its session to the 1,000,000-epoch budget, slowing everyone else's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings, owned_client

UNWATCHED = 0.3


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(unwatched_pause_seconds=UNWATCHED))) as test_client:
        yield owned_client(test_client)


def handle(client: TestClient, sid: str) -> Any:
    return client.app.state.manager.handles[sid]  # type: ignore[attr-defined]


def wait_for(predicate: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_an_unwatched_run_is_paused_and_a_watcher_resumes_it(client: TestClient) -> None:
    """No subscriber, no request for unwatched_pause_seconds: paused and flagged; a websocket
    subscriber plays it again."""
    sid = client.post("/api/sessions", json={}).json()["id"]
    assert client.post(f"/api/sessions/{sid}/commands", json={"type": "play"}).status_code == 200
    # Polling over REST would touch it: watch the manager's flag instead.
    wait_for(lambda: handle(client, sid).paused_unwatched)
    paused = client.get(f"/api/sessions/{sid}").json()
    assert paused["status"] == "paused" and paused["epoch"] > 0
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        assert ws.receive_json()["type"] == "hello"
        wait_for(lambda: handle(client, sid).status == "running")
        assert not handle(client, sid).paused_unwatched
        assert client.get(f"/api/sessions/{sid}").json()["status"] == "running"


def test_a_watched_run_keeps_running(client: TestClient) -> None:
    """A subscriber keeps it going however long nobody calls it."""
    sid = client.post("/api/sessions", json={}).json()["id"]
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        assert ws.receive_json()["type"] == "hello"
        client.post(f"/api/sessions/{sid}/commands", json={"type": "play"})
        time.sleep(UNWATCHED * 4)
        assert handle(client, sid).status == "running"
        assert not handle(client, sid).paused_unwatched


def test_a_session_the_user_paused_is_not_resumed_by_a_watcher(client: TestClient) -> None:
    """Only a pause the manager made is undone by a new subscriber."""
    sid = client.post("/api/sessions", json={}).json()["id"]
    client.post(f"/api/sessions/{sid}/commands", json={"type": "play"})
    client.post(f"/api/sessions/{sid}/commands", json={"type": "pause"})
    time.sleep(UNWATCHED * 3)
    assert not handle(client, sid).paused_unwatched
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        assert ws.receive_json()["type"] == "hello"
        time.sleep(0.2)
        assert client.get(f"/api/sessions/{sid}").json()["status"] == "paused"


def test_a_rest_step_job_is_not_paused_while_it_runs() -> None:
    """A long REST step is a job its client polls (not the session): it runs to its end."""
    settings = make_settings(unwatched_pause_seconds=UNWATCHED, job_wait_seconds=0.1)
    with TestClient(create_app(settings)) as bare:
        client = owned_client(bare)
        sid = client.post("/api/sessions", json={"speed": 20.0}).json()["id"]
        started = client.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 30})
        assert started.status_code == 202, started.text
        time.sleep(UNWATCHED * 3)
        assert not handle(client, sid).paused_unwatched
        wait_for(lambda: client.get(f"/api/sessions/{sid}").json()["epoch"] == 30)
