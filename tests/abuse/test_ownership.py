"""Issue 9, "anyone can read, change or delete any session": owners against a real server.

A victim (127.0.0.1) creates a session; an attacker from another address (127.0.0.40) knows its
id. Before: the attacker listed, exported, PATCHed and deleted it (200/200/204), and a
DNS-rebinding page (Origin and Host both evil.example) got the websocket (101).
"""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from bench.abuse_lib import VICTIM, Server, raw_websocket
from tests.abuse.conftest import http

ATTACKER = "127.0.0.40"


def victim_session(server: Server) -> tuple[str, str]:
    """A session of the victim's: (id, owner token)."""
    with http(server, VICTIM) as victim:
        created = victim.post("/api/sessions", json={})
    assert created.status_code == 201, created.text
    body = created.json()
    assert isinstance(body.get("owner_token"), str) and len(body["owner_token"]) >= 22, body
    return body["id"], body["owner_token"]


def test_a_foreign_client_cannot_list_read_change_or_delete(server: Server) -> None:
    """Without the token: 401 + WWW-Authenticate; with another owner's token: 403; the list
    shows only the caller's own sessions; the owner can still do everything afterwards."""
    session_id, token = victim_session(server)
    path = f"/api/sessions/{session_id}"
    with http(server, ATTACKER) as attacker:
        assert session_id not in {s["id"] for s in attacker.get("/api/sessions").json()}
        own = attacker.post("/api/sessions", json={}).json()
        other = {"Authorization": f"Bearer {own['owner_token']}"}
        assert [s["id"] for s in attacker.get("/api/sessions", headers=other).json()] == [
            own["id"]
        ]
        attempts = [
            ("GET", f"{path}/export", None),
            ("GET", f"{path}/data.csv", None),
            ("PATCH", path, {"learning_rate": 0.1}),
            ("POST", f"{path}/commands", {"type": "play"}),
            ("POST", f"{path}/timetravel", None),
            ("DELETE", path, None),
        ]
        for method, url, body in attempts:
            bare = attacker.request(method, url, json=body)
            assert bare.status_code == 401, (method, url, bare.status_code, bare.text)
            assert bare.headers.get("www-authenticate", "").lower().startswith("bearer")
            foreign = attacker.request(method, url, json=body, headers=other)
            assert foreign.status_code == 403, (method, url, foreign.status_code, foreign.text)
        # Watching stays open to anyone with the id.
        assert attacker.get(path).status_code == 200
        attacker.delete(f"/api/sessions/{own['id']}", headers=other)
    mine = {"Authorization": f"Bearer {token}"}
    with http(server, VICTIM) as victim:
        assert victim.get("/api/sessions", headers=mine).json()[0]["id"] == session_id
        assert victim.get(f"{path}/export", headers=mine).status_code == 200
        assert victim.patch(path, json={"learning_rate": 0.1}, headers=mine).status_code == 200
        assert victim.delete(path, headers=mine).status_code == 204


def test_a_rebinding_host_is_refused(server: Server) -> None:
    """A DNS-rebinding page sends our port with its own name as Host (and as Origin): REST is
    refused by the Host allow-list and the websocket upgrade is not accepted (no 101)."""
    session_id, token = victim_session(server)
    evil = f"evil.example:{server.port}"
    with http(server, ATTACKER) as attacker:
        rest = attacker.get(f"/api/sessions/{session_id}", headers={"Host": evil})
        assert rest.status_code == 400, (rest.status_code, rest.text)
        # A body-less POST (no preflight from a browser) needs the token even from a page.
        bodiless = attacker.post(f"/api/sessions/{session_id}/timetravel",
                                 headers={"Origin": f"http://{evil}"})
        assert bodiless.status_code in (401, 403), bodiless.status_code
    for host in (evil, f"127.0.0.1:{server.port}"):
        sock = raw_websocket(server.port, f"/ws/sessions/{session_id}", ATTACKER, host=host,
                             extra_headers=f"Origin: http://{evil}\r\n")
        status_line = sock.recv(200).split(b"\r\n", 1)[0]
        sock.close()
        assert b" 101 " not in status_line, (host, status_line)
        assert b" 403 " in status_line or b" 400 " in status_line, (host, status_line)
    with http(server, VICTIM) as victim:
        victim.delete(f"/api/sessions/{session_id}",
                      headers={"Authorization": f"Bearer {token}"})


def test_a_watcher_is_read_only_until_it_sends_the_owner_token(server: Server) -> None:
    """Anyone with the id may watch; a command before `auth` is a read-only error (the
    connection goes on), a wrong token is refused, the owner's token makes it a driver."""
    session_id, token = victim_session(server)
    url = f"{server.ws_base}/ws/sessions/{session_id}"
    with connect(url, max_size=None, compression=None) as ws:
        assert json.loads(ws.recv(5))["type"] == "hello"
        ws.send(json.dumps({"type": "play", "id": 1}))
        error = next_reply(ws, 1)
        assert error["type"] == "error" and "read-only" in error["detail"], error
        ws.send(json.dumps({"type": "auth", "token": "x" * 43}))
        refused = next_reply(ws, None, kinds=("auth", "error"))
        assert refused["type"] == "error", refused
        ws.send(json.dumps({"type": "auth", "token": token}))
        assert next_reply(ws, None, kinds=("auth", "error")) == {"type": "auth", "owner": True}
        ws.send(json.dumps({"type": "pause", "id": 2}))
        ack = next_reply(ws, 2)
        assert ack["type"] == "ack", ack
    with http(server, VICTIM) as victim:
        victim.delete(f"/api/sessions/{session_id}",
                      headers={"Authorization": f"Bearer {token}"})


def next_reply(
    ws: object, request_id: object, kinds: tuple[str, ...] = ("ack", "error", "prediction")
) -> dict[str, object]:
    """The next text message of one of `kinds` (with `request_id` when it carries one)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = ws.recv(deadline - time.monotonic())  # type: ignore[attr-defined]
        if isinstance(message, bytes):
            continue
        parsed: dict[str, object] = json.loads(message)
        if parsed.get("type") in kinds and parsed.get("id", request_id) == request_id:
            return parsed
    raise AssertionError(f"no {kinds} reply with id {request_id!r} in 5 s")
