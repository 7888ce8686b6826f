"""Random commands and config changes against one real session: 4xx or 2xx, never a 5xx."""

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.schemas import COMMAND_TYPES
from app.main import create_app
from app.sessions.config import SessionConfig
from tests.conftest import make_settings, owned_client

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)
STATUSES: set[int] = set()
CONFIG_FIELDS = st.sampled_from(sorted(SessionConfig.model_fields))
COMMAND_FIELDS = st.sampled_from(["n", "seed", "config", "layer", "param", "index", "value",
                                  "points", "same_start", "id"])


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    command: dict[str, Any] = {"type": draw(st.sampled_from([*COMMAND_TYPES, "jump"]))}
    for field in draw(st.lists(COMMAND_FIELDS, max_size=3, unique=True)):
        command[field] = draw(JSON)
    if command["type"] == "step":
        command["n"] = draw(st.integers(-2, 3))  # a big step would only make the test slow
    return command


@st.composite
def config_changes(draw: st.DrawFn) -> dict[str, Any]:
    return {field: draw(JSON) for field in draw(st.lists(CONFIG_FIELDS, max_size=3, unique=True))}


def test_random_commands_and_patches_never_give_5xx() -> None:
    with TestClient(create_app(make_settings())) as bare:
        client = owned_client(bare)
        sid = client.post("/api/sessions", json={"epoch_budget": 50}).json()["id"]

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        @given(st.one_of(commands().map(lambda c: ("command", c)),
                         config_changes().map(lambda c: ("patch", c))))
        def check(action: tuple[str, dict[str, Any]]) -> None:
            kind, body = action
            # json.dumps writes NaN/Infinity tokens, which the server must refuse cleanly.
            content = json.dumps(body).encode()
            headers = {"content-type": "application/json"}
            if kind == "command":
                response = client.post(f"/api/sessions/{sid}/commands", content=content,
                                       headers=headers)
            else:
                response = client.patch(f"/api/sessions/{sid}", content=content, headers=headers)
            STATUSES.add(response.status_code)
            assert response.status_code < 500, (body, response.text)
            assert client.get(f"/api/sessions/{sid}").status_code == 200

        check()
        # The run reached the worker both ways: some bodies applied, some refused there.
        assert 200 in STATUSES and 422 in STATUSES, STATUSES


def test_random_websocket_messages_are_answered_and_the_socket_stays_open() -> None:
    with TestClient(create_app(make_settings())) as bare:
        client = owned_client(bare)
        sid = client.post("/api/sessions", json={"epoch_budget": 50}).json()["id"]
        with client.websocket_connect(f"/ws/sessions/{sid}") as ws:

            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck),
                      database=None)
            @given(st.one_of(commands().map(json.dumps), st.text(max_size=20)))
            def check(text: str) -> None:
                ws.send_text(text)
                while True:  # skip frames until this message's answer
                    message = ws.receive()
                    if message.get("text") is not None:
                        reply = json.loads(message["text"])
                        if reply["type"] in ("ack", "error", "prediction"):
                            break

            check()
            ws.send_json({"type": "reset", "id": "last"})
            while (reply := json.loads(ws.receive().get("text") or "{}")).get("id") != "last":
                pass
            assert reply["type"] == "ack"
