"""The classroom over REST and websocket (docs/protocol.md "Classroom")."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.classroom.hub import CODE_ALPHABET
from app.main import create_app
from app.sessions.build import grid_points
from app.storage import classes as queries
from tests.conftest import make_settings


@pytest.fixture
def bare() -> Iterator[TestClient]:
    """A TestClient without owner hooks: every request says who it is (tokens explicit)."""
    with TestClient(create_app(make_settings(tile_fps=20.0))) as test_client:
        yield test_client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_class(client: TestClient, title: str = "Period 3") -> dict[str, Any]:
    response = client.post("/api/classes", json={"title": title})
    assert response.status_code == 201, response.text
    return dict(response.json())


def new_learner(client: TestClient, config: dict[str, Any] | None = None) -> tuple[str, str]:
    """A session of a new owner: (session id, owner token)."""
    body = client.post("/api/sessions", json=config or {}).json()
    return body["id"], body["owner_token"]


def join(client: TestClient, code: str, session: str, token: str, name: str) -> Any:
    return client.post(f"/api/classes/{code}/join", json={"session_id": session, "name": name},
                       headers=auth(token))


def test_create_class_gives_a_code_and_a_teacher_token_only_the_teacher_reads_it(
    bare: TestClient,
) -> None:
    """Gold: the stored row and the spec's statuses. A class is a 6-character code from the
    readable alphabet and a 256-bit teacher token; the server stores only the token's SHA-256
    (the row holds no token); reading the class
    needs that token: 401 without, 403 with another (even another class's teacher's), 404
    for an unknown code."""
    created = new_class(bare)
    code, token = created["code"], created["teacher_token"]
    assert len(code) == 6 and set(code) <= set(CODE_ALPHABET)
    assert created["url"] == f"/class/{code}" and created["title"] == "Period 3"
    assert len(token) >= 43
    storage = bare.app.state.storage  # type: ignore[attr-defined]
    row = queries.read_class(storage.engine, code)
    assert row is not None and token not in (row.teacher_hash, row.title)
    read = bare.get(f"/api/classes/{code}", headers=auth(token))
    assert read.status_code == 200 and read.json()["learners"] == []
    assert bare.get(f"/api/classes/{code}").status_code == 401
    other = new_class(bare, "Other")
    refused = bare.get(f"/api/classes/{code}", headers=auth(other["teacher_token"]))
    assert refused.status_code == 403 and "teacher token" in refused.json()["detail"]
    assert bare.get("/api/classes/ZZZZZZ", headers=auth(token)).status_code == 404
    # The typed code is forgiving: lower case and a dash find the same class.
    assert bare.get(f"/api/classes/{code[:3].lower()}-{code[3:]}",
                    headers=auth(token)).status_code == 200


def test_join_needs_the_sessions_owner_and_a_name(bare: TestClient) -> None:
    """Gold: issue 9's ownership statuses and the teacher's listing. A learner attaches their
    own session under a display name (control characters cut);
    another owner's token is a 403, none a 401, an unknown session 404, a blank name 422
    naming the field; the teacher then sees the learner, live."""
    room = new_class(bare)
    code, teacher = room["code"], room["teacher_token"]
    session, owner = new_learner(bare)
    _, stranger = new_learner(bare)
    assert join(bare, code, session, stranger, "Eve").status_code == 403
    no_token = bare.post(f"/api/classes/{code}/join", json={"session_id": session, "name": "A"})
    assert no_token.status_code == 401
    assert join(bare, code, "nope", owner, "Ada").status_code == 404
    blank = join(bare, code, session, owner, " \x07 ")
    assert blank.status_code == 422 and blank.json()["detail"][0]["loc"] == ["body", "name"]
    joined = join(bare, code, session, owner, "Ada\x00 Lovelace ")
    assert joined.status_code == 200, joined.text
    assert joined.json() == {"code": code, "title": "Period 3", "session_id": session,
                             "name": "Ada Lovelace"}
    learners = bare.get(f"/api/classes/{code}", headers=auth(teacher)).json()["learners"]
    assert learners == [{"session_id": session, "name": "Ada Lovelace", "live": True}]


def test_quotas_classes_per_address_and_learners_per_class() -> None:
    """Gold: the settings (lowered to 2 and 1). max_classes_per_address and
    max_learners_per_class are 429s with Retry-After naming the setting; a class deleted by its
    teacher frees the quota and leaves its learners' sessions (read back)."""
    settings = make_settings(max_classes_per_address=2, max_learners_per_class=1)
    with TestClient(create_app(settings)) as client:
        first, _ = new_class(client), new_class(client)
        refused = client.post("/api/classes", json={})
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert "max_classes_per_address = 2" in refused.json()["detail"]
        a, a_token = new_learner(client)
        b, b_token = new_learner(client)
        assert join(client, first["code"], a, a_token, "A").status_code == 200
        full = join(client, first["code"], b, b_token, "B")
        assert full.status_code == 429 and "max_learners_per_class = 1" in full.json()["detail"]
        assert client.delete(f"/api/classes/{first['code']}").status_code == 401
        gone = client.delete(f"/api/classes/{first['code']}", headers=auth(first["teacher_token"]))
        assert gone.status_code == 204
        assert client.get(f"/api/sessions/{a}").status_code == 200
        assert client.post("/api/classes", json={}).status_code == 201


def test_learner_leaves_or_is_removed_by_the_teacher(bare: TestClient) -> None:
    """Gold: the teacher's listing. DELETE .../learners/{id}: the session's owner or the
    teacher (the learner is gone from the class); anyone else 403."""
    room = new_class(bare)
    code, teacher = room["code"], room["teacher_token"]
    session, owner = new_learner(bare)
    _, stranger = new_learner(bare)
    join(bare, code, session, owner, "Ada")
    path = f"/api/classes/{code}/learners/{session}"
    assert bare.delete(path, headers=auth(stranger)).status_code == 403
    assert bare.delete(path, headers=auth(owner)).status_code == 204
    join(bare, code, session, owner, "Ada")
    assert bare.delete(path, headers=auth(teacher)).status_code == 204
    assert bare.get(f"/api/classes/{code}", headers=auth(teacher)).json()["learners"] == []


def receive_until(socket: Any, kind: str, predicate: Any = None, limit: int = 50) -> Any:
    """The first JSON message of this type (satisfying predicate) within `limit` messages."""
    for _ in range(limit):
        raw = socket.receive()
        if raw.get("text") is None:
            continue  # a session's binary frame
        message = json.loads(raw["text"])
        if message["type"] == kind and (predicate is None or predicate(message)):
            return message
    raise AssertionError(f"no {kind!r} message in {limit}")


def test_only_the_teacher_opens_the_dashboard_stream(bare: TestClient) -> None:
    """Gold: the protocol's close codes. WS /ws/classes/{code}: no auth message or another
    token (another class's teacher's) -> an error then close 4403; an unknown class 4404; the
    teacher gets hello (an empty roster)."""
    room = new_class(bare)
    code = room["code"]
    other = new_class(bare, "Other")
    for first in ({"type": "hello"}, {"type": "auth", "token": other["teacher_token"]}):
        with bare.websocket_connect(f"/ws/classes/{code}") as socket:
            socket.send_json(first)
            error = socket.receive_json()
            assert error["type"] == "error" and "teacher token" in error["detail"]
            closed = socket.receive()
            assert closed["type"] == "websocket.close" and closed["code"] == 4403
    with bare.websocket_connect("/ws/classes/QQQQQQ") as socket:
        socket.send_json({"type": "auth", "token": room["teacher_token"]})
        assert socket.receive_json()["type"] == "error"
        assert socket.receive()["code"] == 4404
    with bare.websocket_connect(f"/ws/classes/{code}") as socket:
        socket.send_json({"type": "auth", "token": room["teacher_token"]})
        hello = socket.receive_json()
        assert hello["type"] == "hello" and hello["class"]["code"] == code
        assert hello["learners"] == []


def expected_tile(client: TestClient, session: str, token: str, size: int) -> np.ndarray:
    """The gold: the session's own predictions (REST predict, float64) at the tile's cell
    centres, encoded as the protocol says (binary: 2p - 1 on [-1, 1] -> 0..255)."""
    points = grid_points(size, 6.0).tolist()
    outputs = client.post(f"/api/sessions/{session}/predict", json={"points": points},
                          headers=auth(token)).json()["outputs"]
    values = 2.0 * np.array([o[0] for o in outputs]) - 1.0
    return np.rint((np.clip(values, -1, 1) + 1) * 127.5).astype(np.uint8).reshape(size, size)


def test_dashboard_tiles_are_each_learners_boundary_and_update(bare: TestClient) -> None:
    """Gold: the session's own float64 predictions (REST predict). Every learner's tile
    arrives with name, epoch, test loss and status; its 24x24 bytes
    match the session's own float64 predictions at the cell centres to within 1 level of 255
    (the tile is drawn in float32); after training, a new tile with the new epoch follows."""
    room = new_class(bare)
    code, teacher = room["code"], room["teacher_token"]
    learners = [new_learner(bare, {"seed": i}) for i in range(3)]
    for i, (session, token) in enumerate(learners):
        assert join(bare, code, session, token, f"L{i}").status_code == 200
    first, first_token = learners[0]
    bare.post(f"/api/sessions/{first}/commands", json={"type": "step", "n": 5},
              headers=auth(first_token))
    with bare.websocket_connect(f"/ws/classes/{code}") as socket:
        socket.send_json({"type": "auth", "token": teacher})
        hello = socket.receive_json()
        assert [x["name"] for x in hello["learners"]] == ["L0", "L1", "L2"]
        seen: dict[str, Any] = {}
        while len(seen) < 3:
            for tile in receive_until(socket, "tiles")["tiles"]:
                seen[tile["session"]] = tile
        tile = seen[first]
        assert (tile["name"], tile["epoch"], tile["status"], tile["kind"]) == (
            "L0", 5, "paused", "value")
        assert isinstance(tile["test_loss"], float) and tile["size"] == 24
        grid = np.frombuffer(base64.b64decode(tile["grid"]), np.uint8).reshape(24, 24)
        gold = expected_tile(bare, first, first_token, 24)
        assert np.abs(grid.astype(int) - gold.astype(int)).max() <= 1
        bare.post(f"/api/sessions/{first}/commands", json={"type": "step", "n": 3},
                  headers=auth(first_token))
        later = receive_until(socket, "tiles", lambda m: any(
            t["session"] == first and t["epoch"] == 8 for t in m["tiles"]))
        assert {t["session"] for t in later["tiles"]} == {first}  # unchanged ones not resent


def test_preset_is_pushed_to_every_learner_and_their_pages_are_told(bare: TestClient) -> None:
    """Gold: each session read back over REST. POST .../preset (teacher): every learner's
    session gets the config change (read back
    over REST), the page watching a learner gets {"type": "class", "event": "preset"} with the
    new config; an invalid preset is a 422 naming the field and changes nobody."""
    room = new_class(bare)
    code, teacher = room["code"], room["teacher_token"]
    learners = [new_learner(bare) for _ in range(3)]
    for i, (session, token) in enumerate(learners):
        join(bare, code, session, token, f"L{i}")
    path = f"/api/classes/{code}/preset"
    bad = bare.post(path, json={"learning_rate": -1}, headers=auth(teacher))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == [
        "body", "learning_rate"]
    assert bare.post(path, json={"learning_rate": 0.1}).status_code == 401
    preset = {"learning_rate": 0.1, "dataset": "xor",
              "layers": [{"units": 3, "activation": "relu"}]}
    watched, watched_token = learners[0]
    with bare.websocket_connect(f"/ws/sessions/{watched}") as page:
        page.send_json({"type": "auth", "token": watched_token})
        pushed = bare.post(path, json=preset, headers=auth(teacher))
        assert pushed.status_code == 200, pushed.text
        assert sorted(pushed.json()["done"]) == sorted(s for s, _ in learners)
        assert pushed.json()["failed"] == []
        told = receive_until(page, "class")
        assert told["event"] == "preset" and told["class"] == code
        assert told["session"]["config"]["dataset"] == "xor"
    for session, _ in learners:
        config = bare.get(f"/api/sessions/{session}").json()["config"]
        assert (config["learning_rate"], config["dataset"]) == (0.1, "xor")
        assert [layer["units"] for layer in config["layers"]] == [3]
    read = bare.get(f"/api/classes/{code}", headers=auth(teacher)).json()
    assert read["preset"]["dataset"] == "xor"


def test_pause_all_pauses_every_learner(bare: TestClient) -> None:
    """Gold: each session read back over REST. POST .../pause (teacher): every running
    learner's session is paused; without the teacher token, 401."""
    room = new_class(bare)
    code, teacher = room["code"], room["teacher_token"]
    learners = [new_learner(bare, {"speed": 20}) for _ in range(3)]
    for i, (session, token) in enumerate(learners):
        join(bare, code, session, token, f"L{i}")
        played = bare.post(f"/api/sessions/{session}/commands", json={"type": "play"},
                           headers=auth(token))
        assert played.json()["status"] == "running"
    assert bare.post(f"/api/classes/{code}/pause").status_code == 401
    paused = bare.post(f"/api/classes/{code}/pause", headers=auth(teacher))
    assert paused.status_code == 200 and len(paused.json()["done"]) == 3
    time.sleep(0.05)
    for session, _ in learners:
        assert bare.get(f"/api/sessions/{session}").json()["status"] == "paused"


def test_a_class_outlives_the_server() -> None:
    """Gold: the database. A class created, given a preset and then read by a new server on
    the same data directory answers its teacher token (only its hash was stored) with its
    title and preset; another token is still refused."""
    settings = make_settings()
    with TestClient(create_app(settings)) as client:
        room = new_class(client, "Kept")
        code, teacher = room["code"], room["teacher_token"]
        pushed = client.post(f"/api/classes/{code}/preset", json={"dataset": "gauss"},
                             headers=auth(teacher))
        assert pushed.status_code == 200, pushed.text
    with TestClient(create_app(settings)) as client:
        read = client.get(f"/api/classes/{code}", headers=auth(teacher))
        assert read.status_code == 200, read.text
        assert (read.json()["title"], read.json()["preset"]) == ("Kept", {"dataset": "gauss"})
        other = new_class(client)["teacher_token"]
        assert client.get(f"/api/classes/{code}", headers=auth(other)).status_code == 403


def test_learners_are_stored_and_come_back_with_their_sessions() -> None:
    """Gold: the sessions table. A joined session's class and name are in its stored row
    (written once the session has a row: its first checkpoint), and a new server on the same
    data directory restores the session and lists it in the class, live, under its name."""
    settings = make_settings(checkpoint_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        room = new_class(client)
        code, teacher = room["code"], room["teacher_token"]
        session, owner = new_learner(client)
        assert join(client, code, session, owner, "Ada").status_code == 200
        storage = client.app.state.storage  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while queries.read_learners(storage.engine, code) != [(session, "Ada")]:
            assert time.monotonic() < deadline, "the membership was not stored within 10 s"
            time.sleep(0.1)
    with TestClient(create_app(settings)) as client:
        learners = client.get(f"/api/classes/{code}", headers=auth(teacher)).json()["learners"]
        assert learners == [{"session_id": session, "name": "Ada", "live": True}]


def test_class_quotas_hold_across_a_restart() -> None:
    """Gold: the settings (lowered to 2 per owner, 3 per address). An owner creates 2 classes;
    a new server on the same database refuses the owner's third (429 naming
    max_classes_per_owner) though its memory is empty, takes one without a token from the
    same address, then refuses the address's fourth (max_classes_per_address)."""
    settings = make_settings(max_classes_per_owner=2, max_classes_per_address=3)
    with TestClient(create_app(settings)) as client:
        owner = client.post("/api/sessions", json={}).json()["owner_token"]
        for _ in range(2):
            made = client.post("/api/classes", json={}, headers=auth(owner))
            assert made.status_code == 201, made.text
    with TestClient(create_app(settings)) as client:
        refused = client.post("/api/classes", json={}, headers=auth(owner))
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert "created 2 classes; max_classes_per_owner = 2" in refused.json()["detail"]
        assert client.post("/api/classes", json={}).status_code == 201
        refused = client.post("/api/classes", json={})
        assert refused.status_code == 429
        assert "created 3 classes; max_classes_per_address = 3" in refused.json()["detail"]
