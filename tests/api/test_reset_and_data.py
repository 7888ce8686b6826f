"""REST and websocket: reset / same_start, data edits that keep the model, the warning."""

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.sessions.frames import decode_frame
from app.settings import get_settings


def create(client: TestClient, **config: Any) -> dict[str, Any]:
    response = client.post("/api/sessions", json=config)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def command(client: TestClient, sid: str, body: dict[str, Any]) -> Any:
    return client.post(f"/api/sessions/{sid}/commands", json=body)


def test_reset_rerolls_and_same_start_restarts(client: TestClient) -> None:
    session = create(client)
    sid, start = session["id"], session["weights_hash"]
    assert session["config"]["init_draw"] == 0 and session["warning"] is None
    command(client, sid, {"type": "step", "n": 3})
    rerolled = command(client, sid, {"type": "reset"}).json()
    assert rerolled["config"]["init_draw"] == 1 and rerolled["epoch"] == 0
    assert rerolled["weights_hash"] not in (start, session["weights_hash"])
    # A new session asking for draw 1 starts exactly there.
    assert create(client, init_draw=1)["weights_hash"] == rerolled["weights_hash"]
    command(client, sid, {"type": "step", "n": 3})
    again = command(client, sid, {"type": "reset", "same_start": True}).json()
    assert again["config"]["init_draw"] == 1 and again["weights_hash"] == rerolled["weights_hash"]
    # The data never moved: same points before and after.
    assert client.get(f"/api/sessions/{sid}/data.csv").text == client.get(
        f"/api/sessions/{create(client)['id']}/data.csv"
    ).text


@pytest.mark.parametrize("value", ["yes", 1, 0, None, [True]])
def test_same_start_must_be_a_boolean(client: TestClient, value: object) -> None:
    sid = create(client)["id"]
    response = command(client, sid, {"type": "reset", "same_start": value})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"][-1] == "same_start"
    assert error["msg"] == f"Value error, expected true or false, got {value!r}"


def test_a_websocket_reset_with_same_start_restarts(client: TestClient) -> None:
    session = create(client)
    sid = session["id"]
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        ws.send_json({"type": "step", "n": 2})
        ws.send_json({"type": "reset", "same_start": "true", "id": "bad"})
        ws.send_json({"type": "reset", "same_start": True, "id": "ok"})
        replies = {}
        while len(replies) < 2:
            message = ws.receive()
            if message.get("text") is not None:
                body = json.loads(message["text"])
                if body.get("id") in ("bad", "ok"):
                    replies[body["id"]] = body
    assert replies["bad"] == {
        "type": "error", "id": "bad",
        "detail": "invalid reset message: same_start: Value error, expected true or false, "
                  "got 'true'",
    }
    assert replies["ok"]["type"] == "ack"
    assert replies["ok"]["session"]["weights_hash"] == session["weights_hash"]
    assert replies["ok"]["session"]["config"]["init_draw"] == 0


def test_adding_a_point_over_rest_keeps_the_model(client: TestClient) -> None:
    session = create(client)
    sid = session["id"]
    trained = command(client, sid, {"type": "step", "n": 4}).json()
    lines = client.get(f"/api/sessions/{sid}/data.csv").text.strip().splitlines()[1:]
    table = [[float(v) for v in line.split(",")] for line in lines]
    train, test = table[: trained["n_train"]], table[trained["n_train"]:]
    response = client.patch(f"/api/sessions/{sid}", json={
        "points": [*train, [0.25, 0.5, 1.0]], "test_points": test,
    })
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["weights_hash"] == trained["weights_hash"] and edited["epoch"] == 4
    assert (edited["n_train"], edited["n_test"]) == (251, 250)
    lines = client.get(f"/api/sessions/{sid}/data.csv").text.strip().splitlines()
    assert lines[1 + 250] == "0.25,0.5,1"  # the last training row, before the test rows


def test_too_many_points_in_all_is_a_422_naming_both_fields(client: TestClient) -> None:
    limit = get_settings().max_samples
    sid = create(client)["id"]
    half = limit // 2 + 1
    response = client.patch(f"/api/sessions/{sid}", json={
        "points": [[0.0, 0.0, 1.0]] * half, "test_points": [[1.0, 1.0, 0.0]] * half,
    })
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        f"Value error, len(points) + len(test_points) = {2 * half} exceeds max_samples = {limit}"
    )


def test_test_points_without_points_is_a_422(client: TestClient) -> None:
    response = client.post("/api/sessions", json={"test_points": [[0.0, 0.0, 1.0]]})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "Value error, test_points needs points (the training points) as well"
    )


def test_the_warning_reaches_rest_and_every_frame(client: TestClient) -> None:
    sid = create(client, dataset="xor", learning_rate=10.0, frame_rate=20.0)["id"]
    with client.websocket_connect(f"/ws/sessions/{sid}") as ws:
        ws.send_json({"type": "step", "n": 60})
        headers = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = ws.receive()
            if message.get("bytes") is not None:
                header, _ = decode_frame(message["bytes"])
                headers.append(header)
                if header["epoch"] == 60 and header["status"] == "paused":
                    break
    assert all("warning" in header for header in headers)
    assert headers[0]["warning"] is None  # epoch 0
    last = headers[-1]["warning"]
    assert last is not None and last["kind"] == "unstable" and last["since_epoch"] == 1
    assert last["suggested_learning_rate"] == 0.3
    public = client.get(f"/api/sessions/{sid}").json()
    assert public["warning"] == last and public["status"] == "paused"
    cleared = client.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.3}).json()
    assert cleared["warning"] is None and cleared["epoch"] == 60
