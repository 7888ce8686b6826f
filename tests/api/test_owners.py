"""Owners and viewers: the owner token changes and copies a session, anyone with the id watches.

Bare TestClients (no OwnerTokens hooks): every request says which token it presents. The tests
that make an app run on both backends (tests/conftest.py BOTH_BACKENDS): `[local]`, and `[ray]`
with the sessions in shard actors of a real Ray cluster (the ray step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from app.api.owners import OwnerRegistry
from app.main import create_app
from tests.conftest import make_settings

BOTH_BACKENDS = True


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
def bare(new_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A client that attaches no token by itself."""
    with TestClient(new_app()) as client:
        yield client


def create(client: TestClient, token: str | None = None, **config: Any) -> dict[str, Any]:
    response = client.post("/api/sessions", json=config, headers=bearer(token) if token else {})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


# (method, path suffix, json body) of every route that changes or copies a session
OWNER_ROUTES: list[tuple[str, str, Any]] = [
    ("PATCH", "", {"learning_rate": 0.1}),
    ("DELETE", "", None),
    ("POST", "/commands", {"type": "play"}),
    ("POST", "/commands", {"type": "step", "n": 1}),
    ("POST", "/predict", {"points": [[0.0, 0.0]]}),
    ("GET", "/export", None),
    ("GET", "/data.csv", None),
    ("GET", "/trace", None),
]


def test_a_create_issues_a_token_and_a_presented_one_is_kept(bare: TestClient) -> None:
    """No Authorization: a new 256-bit token; a known token: the same owner, the same token."""
    first = create(bare)
    token = first["owner_token"]
    assert len(token) >= 43
    second = create(bare, token)
    assert second["owner_token"] == token
    other = create(bare)
    assert other["owner_token"] != token
    mine = [s["id"] for s in bare.get("/api/sessions", headers=bearer(token)).json()]
    assert mine == [first["id"], second["id"]]
    assert [
        s["id"] for s in bare.get("/api/sessions", headers=bearer(other["owner_token"])).json()
    ] == [other["id"]]
    assert bare.get("/api/sessions").json() == []  # no token: nobody's sessions


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token-we-issued",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer " + "x" * 500,
    ],
)
def test_an_unknown_or_malformed_token_on_create_is_401(
    bare: TestClient, authorization: str
) -> None:
    """Tokens are only ever issued by the server: anything else presented is refused."""
    for path, body in (("/api/sessions", {}), ("/api/sessions/import", {})):
        response = bare.post(path, json=body, headers={"authorization": authorization})
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "Authorization" in response.json()["detail"] or "token" in response.json()["detail"]
    assert bare.get("/health").json()["sessions"] == 0


@pytest.mark.parametrize(("method", "suffix", "body"), OWNER_ROUTES)
def test_a_foreign_client_gets_401_or_403_on_every_owner_route(
    bare: TestClient, method: str, suffix: str, body: Any
) -> None:
    """Without the token: 401 + WWW-Authenticate; with another owner's: 403; nothing changes."""
    owner = create(bare)
    sid = owner["id"]
    stranger = create(bare)["owner_token"]
    url = f"/api/sessions/{sid}{suffix}"
    anonymous = bare.request(method, url, json=body)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert "owner token" in anonymous.json()["detail"]
    foreign = bare.request(method, url, json=body, headers=bearer(stranger))
    assert foreign.status_code == 403, foreign.text
    assert foreign.json()["detail"] == (
        f"session {sid!r} belongs to another owner; anyone may watch it, only its owner may "
        "change or copy it"
    )
    # A viewer may read it, and it is as it was.
    seen = bare.get(f"/api/sessions/{sid}").json()
    assert (seen["status"], seen["epoch"], seen["config"]) == ("paused", 0, {**owner["config"]})
    # The owner may.
    allowed = bare.request(method, url, json=body, headers=bearer(owner["owner_token"]))
    assert allowed.status_code in (200, 204), allowed.text


def test_a_viewer_watches_over_the_websocket_without_a_token(bare: TestClient) -> None:
    """Anyone with the id gets the frames (read-only)."""
    sid = create(bare)["id"]
    with bare.websocket_connect(f"/ws/sessions/{sid}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello" and hello["session"]["id"] == sid


def test_the_token_never_reaches_the_logs(
    bare: TestClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the hash is stored; no log line (any logger, any level) carries the token."""
    caplog.set_level(logging.DEBUG)
    session = create(bare)
    token, sid = session["owner_token"], session["id"]
    create(bare, token)
    bare.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 2}, headers=bearer(token))
    bare.post(f"/api/sessions/{sid}/commands", json={"type": "play"}, headers=bearer(token + "x"))
    bare.post("/api/sessions", json={}, headers=bearer(token[::-1]))
    bare.delete(f"/api/sessions/{sid}", headers=bearer(token))
    manager = bare.app.state.manager  # type: ignore[attr-defined]
    assert all(token not in repr(handle) for handle in manager.handles.values())
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err):
        assert token not in text


def test_a_foreign_host_is_refused_on_rest_and_websocket(bare: TestClient) -> None:
    """DNS rebinding: a page on evil.example resolving to us sends Host: evil.example -> 400."""
    sid = create(bare)["id"]
    rest = bare.get(f"/api/sessions/{sid}", headers={"host": "evil.example:8622"})
    assert rest.status_code == 400
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        bare.websocket_connect(
            f"/ws/sessions/{sid}",
            headers={"host": "evil.example:8622", "origin": "http://evil.example:8622"},
        ),
    ):
        pass
    assert denied.value.status_code == 400
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        assert bare.get("/health", headers={"host": host}).status_code == 200, host


def test_cors_is_closed_unless_configured() -> None:
    """No Access-Control-Allow-Origin by default; only the configured origins get one."""
    preflight = {
        "origin": "http://elsewhere.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
    }
    with TestClient(create_app(make_settings())) as closed:
        answer = closed.options("/api/sessions", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
    settings = make_settings(cors_origins=["http://elsewhere.example"])
    with TestClient(create_app(settings)) as opened:
        answer = opened.options("/api/sessions", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "http://elsewhere.example"
        assert "authorization" in answer.headers["access-control-allow-headers"].lower()


def test_the_owner_registry_is_bounded_and_keeps_owners_that_hold_something() -> None:
    """max_owners: the least recently seen idle owner goes first; one holding a session stays."""
    holding = {"a"}
    registry = OwnerRegistry(2, in_use=lambda owner: owner in holding)
    registry.add("a")
    registry.add("b")
    assert registry.touch("b") and not registry.touch("z")
    registry.add("c")  # full: "a" is older but holds a session, so "b" goes
    assert ("a" in registry, "b" in registry, "c" in registry) == (True, False, True)
    holding.clear()
    registry.add("d")
    assert len(registry) == 2 and "a" not in registry


def test_a_token_the_server_forgot_gets_a_401_and_no_token_a_new_one(
    new_app: Callable[..., FastAPI],
) -> None:
    """An owner forgotten (no session left, registry full) must start afresh."""
    with TestClient(new_app(max_owners=1)) as client:
        first = create(client)
        client.delete(f"/api/sessions/{first['id']}", headers=bearer(first["owner_token"]))
        create(client)  # a new owner takes the only place
        again = client.post("/api/sessions", json={}, headers=bearer(first["owner_token"]))
        assert again.status_code == 401 and "unknown owner token" in again.json()["detail"]
