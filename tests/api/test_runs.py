"""Saved runs over REST (docs/protocol.md "Runs and the gallery"): save, read, view, fork,
delete, ownership, quota, limits, and the gallery's order and filters.

Golds: a run's export is the session's own export at the moment it was saved (byte-for-byte
JSON values); its view's frame carries every epoch row of that export; a fork trained n epochs
equals the original session trained n more (weights, optimizer and rng state, history); the
gallery's order is the test losses sorted by hand.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.routes.runs import ViewCache
from app.main import create_app
from app.sessions.frames import decode_frame
from app.storage import Storage
from app.storage import runs as queries
from tests.conftest import make_settings


@pytest.fixture
def bare() -> Iterator[TestClient]:
    """A TestClient without owner hooks: every request says which token it carries."""
    with TestClient(create_app(make_settings(max_runs_per_owner=3))) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_session(client: TestClient, config: dict[str, Any] | None = None,
                token: str | None = None) -> tuple[str, str]:
    """(session id, owner token) of a new session."""
    response = client.post("/api/sessions", json=config or {},
                           headers=auth(token) if token else {})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["owner_token"]


def step(client: TestClient, session_id: str, token: str, n: int) -> dict[str, Any]:
    """Train n epochs; a step past job_wait_seconds (a loaded machine) is a job: follow it."""
    response = client.post(f"/api/sessions/{session_id}/commands",
                           json={"type": "step", "n": n}, headers=auth(token))
    if response.status_code == 202:
        job = f"/api/jobs/{response.json()['job']['id']}"
        deadline = time.monotonic() + 60
        while client.get(job, headers=auth(token)).json()["state"] == "running":
            assert time.monotonic() < deadline, "the step did not end within 60 s"
            time.sleep(0.05)
        response = client.get(f"{job}/result", headers=auth(token))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def save(client: TestClient, session_id: str, token: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/sessions/{session_id}/runs", json=body, headers=auth(token))
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


def export(client: TestClient, session_id: str, token: str) -> dict[str, Any]:
    response = client.get(f"/api/sessions/{session_id}/export", headers=auth(token))
    assert response.status_code == 200, response.text
    exported: dict[str, Any] = response.json()
    return exported


def split_view(body: bytes) -> list[bytes]:
    """The length-prefixed messages of a run view."""
    messages, at = [], 0
    while at < len(body):
        (length,) = struct.unpack(">I", body[at:at + 4])
        messages.append(body[at + 4:at + 4 + length])
        at += 4 + length
    return messages


def test_a_saved_run_is_the_session_as_saved_whole_and_viewable(bare: TestClient) -> None:
    """Gold: the session's own export at save time; the view's frame carries its every row."""
    session_id, token = new_session(bare, {"optimizer": "adam", "learning_rate": 0.01})
    step(bare, session_id, token, 30)
    saved = export(bare, session_id, token)
    saved_hash = bare.get(f"/api/sessions/{session_id}").json()["weights_hash"]
    run = save(bare, session_id, token, title="  my\nfirst   run ", public=True)
    assert len(run["slug"]) == 12 and run["url"] == f"/r/{run['slug']}"
    assert run["title"] == "my first run"  # one line
    # Inputs 2, hidden 4 and 2, one output: (2*4+4) + (4*2+2) + (2*1+1) = 25 parameters.
    assert (run["dataset"], run["problem"], run["shape"], run["parameters"]) == (
        "circle", "binary", "2-4-2-1", 25)
    assert (run["epochs"], run["optimizer"]) == (30, "adam")
    assert run["test_loss"] == saved["history"]["test_loss"][-1]
    assert run["train_loss"] == saved["history"]["train_loss"][-1]
    thumbnail = base64.b64decode(run["thumbnail"]["base64"])
    assert run["thumbnail"]["size"] == 32 and len(thumbnail) == 32 * 32
    assert len(set(thumbnail)) > 1  # a boundary, not a flat picture

    step(bare, session_id, token, 5)  # the run does not follow the session: it is a snapshot
    whole = bare.get(f"/api/runs/{run['slug']}")  # anyone with the link, no token
    assert whole.status_code == 200
    body = whole.json()
    assert body["export"] == saved
    assert {k: v for k, v in body.items() if k != "export"} == run

    view = bare.get(f"/api/runs/{run['slug']}/view")
    assert view.status_code == 200
    assert view.headers["content-type"] == "application/octet-stream"
    hello_text, frame = split_view(view.content)
    hello = json.loads(hello_text)
    assert hello["type"] == "hello" and hello["run"] == run
    assert hello["session"]["epoch"] == 30
    assert hello["session"]["weights_hash"] == saved_hash
    header, sections = decode_frame(frame)
    assert header["epoch"] == 30 and header["epochs_first"] == 1
    rows = sections["epochs"]
    columns = header["sections"]["epochs"]["columns"]
    assert rows.shape == (30, len(columns))
    for j, name in enumerate(columns):
        expected = np.array(saved["history"][name], dtype=np.float64).astype(np.float32)
        np.testing.assert_array_equal(rows[:, j], expected, err_msg=name)
    assert "output" in header["sections"]  # the boundary, drawn at once


def test_a_fork_continues_bit_identically(bare: TestClient) -> None:
    """Gold: the original session trained n more epochs. The fork (another owner) trained n
    epochs has the same weights, optimizer and rng state and the same history, bit for bit."""
    session_id, token = new_session(
        bare, {"optimizer": "rmsprop", "dataset": "xor", "noise": 0.1, "batch_size": 7,
               "layers": [{"units": 5, "activation": "relu", "dropout": 0.1}]})
    step(bare, session_id, token, 25)
    run = save(bare, session_id, token)
    assert run["public"] is False and run["title"] == "xor 2-5-1, 25 epochs (rmsprop)"
    forked = bare.post(f"/api/runs/{run['slug']}/fork")  # a stranger: a new owner token
    assert forked.status_code == 201, forked.text
    fork = forked.json()
    assert fork["id"] != session_id and fork["owner_token"] != token
    assert (fork["epoch"], fork["status"]) == (25, "paused")
    step(bare, session_id, token, 40)
    step(bare, fork["id"], fork["owner_token"], 40)
    original = export(bare, session_id, token)
    continued = export(bare, fork["id"], fork["owner_token"])
    assert continued == original
    assert continued["epoch"] == 65


def test_saving_and_deleting_need_the_owner(bare: TestClient) -> None:
    """401 without a token, 403 with another owner's, for both the save and the delete."""
    session_id, token = new_session(bare)
    _, stranger = new_session(bare)
    assert bare.post(f"/api/sessions/{session_id}/runs", json={}).status_code == 401
    refused = bare.post(f"/api/sessions/{session_id}/runs", json={}, headers=auth(stranger))
    assert refused.status_code == 403
    run = save(bare, session_id, token)
    slug = run["slug"]
    nobody = bare.delete(f"/api/runs/{slug}")
    assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == "Bearer"
    other = bare.delete(f"/api/runs/{slug}", headers=auth(stranger))
    assert other.status_code == 403
    assert other.json()["detail"].startswith(f"run '{slug}' belongs to another owner")
    assert bare.delete(f"/api/runs/{slug}", headers=auth(token)).status_code == 204
    for path in (f"/api/runs/{slug}", f"/api/runs/{slug}/view"):
        gone = bare.get(path)
        assert gone.status_code == 404, path
        assert gone.json()["detail"] == f"run '{slug}' not found (slugs are 12 characters)"
    page = bare.get(f"/r/{slug}")  # a person: a page that says so
    assert page.status_code == 404 and "This run does not exist" in page.text
    assert f"run &#x27;{slug}&#x27; not found" in page.text


def test_the_run_quota_is_per_owner(bare: TestClient) -> None:
    """max_runs_per_owner = 3: the fourth save is a 429 with Retry-After naming the limit;
    another owner still saves; deleting one makes room again."""
    session_id, token = new_session(bare)
    slugs = [save(bare, session_id, token)["slug"] for _ in range(3)]
    refused = bare.post(f"/api/sessions/{session_id}/runs", json={}, headers=auth(token))
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    assert refused.json()["detail"].startswith(
        "this owner has 3 saved runs; max_runs_per_owner = 3")
    other_id, other = new_session(bare)
    save(bare, other_id, other)
    assert bare.delete(f"/api/runs/{slugs[0]}", headers=auth(token)).status_code == 204
    save(bare, session_id, token)


def test_limits_are_422s_naming_field_value_and_limit(bare: TestClient) -> None:
    """title over max_run_title_chars, limit over max_gallery_runs, offset over
    max_gallery_offset, an unknown dataset or sort; a long slug is a 404 that does not echo it."""
    session_id, token = new_session(bare)
    long_title = bare.post(f"/api/sessions/{session_id}/runs", json={"title": "x" * 121},
                           headers=auth(token))
    assert long_title.status_code == 422
    entry = long_title.json()["detail"][0]
    assert entry["loc"] == ["body", "title"]
    assert "title is 121 characters; max_run_title_chars = 120" in entry["msg"]
    extra = bare.post(f"/api/sessions/{session_id}/runs", json={"color": 1},
                      headers=auth(token))
    assert extra.status_code == 422
    for query, name, message in (
        ("limit=101", "limit", "limit = 101 exceeds max_gallery_runs = 100"),
        ("offset=10001", "offset", "offset = 10001 exceeds max_gallery_offset = 10000"),
        ("dataset=nonesuch", "dataset", "unknown dataset; expected one of: circle"),
    ):
        response = bare.get(f"/api/runs?{query}")
        assert response.status_code == 422, query
        entry = response.json()["detail"][0]
        assert entry["loc"] == ["query", name] and entry["msg"].startswith(message), entry
    assert bare.get("/api/runs?sort=best").status_code == 422
    assert bare.get("/api/runs?problem=ranking").status_code == 422
    long_slug = bare.get("/api/runs/" + "a" * 5000)
    assert long_slug.status_code == 404 and len(long_slug.text) < 200


def test_the_gallery_lists_public_runs_by_test_loss(bare: TestClient) -> None:
    """Gold: the public runs' test losses sorted by hand; unlisted runs never appear; the
    dataset and problem filters keep only their runs."""
    listed: list[dict[str, Any]] = []
    for config, epochs in (({}, 2), ({}, 60), ({"dataset": "xor"}, 30),
                           ({"dataset": "gauss", "learning_rate": 0.1}, 40)):
        session_id, token = new_session(bare, config)
        step(bare, session_id, token, epochs)
        listed.append(save(bare, session_id, token, public=True))
    hidden_id, hidden_token = new_session(bare)
    step(bare, hidden_id, hidden_token, 80)
    unlisted = save(bare, hidden_id, hidden_token, public=False)

    everything = bare.get("/api/runs?sort=test_loss").json()
    assert [r["slug"] for r in everything] == [
        r["slug"] for r in sorted(listed, key=lambda r: r["test_loss"])]
    assert unlisted["slug"] not in {r["slug"] for r in everything}
    assert bare.get(f"/api/runs/{unlisted['slug']}").status_code == 200  # by its link
    circles = bare.get("/api/runs?dataset=circle").json()
    assert {r["slug"] for r in circles} == {listed[0]["slug"], listed[1]["slug"]}
    assert [r["test_loss"] for r in circles] == sorted(r["test_loss"] for r in circles)
    assert bare.get("/api/runs?problem=regression").json() == []
    newest = bare.get("/api/runs?sort=created&limit=2").json()
    assert [r["slug"] for r in newest] == [listed[3]["slug"], listed[2]["slug"]]
    second_page = bare.get("/api/runs?sort=created&limit=2&offset=2").json()
    assert [r["slug"] for r in second_page] == [listed[1]["slug"], listed[0]["slug"]]
    page = bare.get("/gallery")
    assert page.status_code == 200 and "/static/js/gallery.js" in page.text
    assert bare.get(f"/r/{listed[0]['slug']}").status_code == 200


def test_thumbnails_of_multiclass_and_regression_runs(bare: TestClient) -> None:
    """Gold: the saved network's own predictions on the thumbnail's grid (POST predict at the
    cell centres): multiclass thumbnails hold the argmax class, regression ones the prediction
    clipped to [-1, 1] and mapped to 0..255."""
    size, extent = 32, 6.0
    step_size = 2 * extent / size
    centres = -extent + (np.arange(size) + 0.5) * step_size
    x1, x2 = np.meshgrid(centres, centres[::-1])
    grid = np.column_stack([x1.ravel(), x2.ravel()]).tolist()
    for dataset, problem in (("blobs-3", "multiclass"), ("reg-plane", "regression")):
        session_id, token = new_session(bare, {"dataset": dataset})
        step(bare, session_id, token, 20)
        outputs = np.array(bare.post(f"/api/sessions/{session_id}/predict",
                                     json={"points": grid}, headers=auth(token)).json()["outputs"])
        run = save(bare, session_id, token)
        assert run["problem"] == problem
        codes = np.frombuffer(base64.b64decode(run["thumbnail"]["base64"]), np.uint8)
        if problem == "multiclass":
            assert run["shape"] == "2-4-2-3"
            np.testing.assert_array_equal(codes, np.argmax(outputs, axis=1))
        else:
            expected = np.rint((np.clip(outputs[:, 0], -1, 1) + 1) / 2 * 255)
            np.testing.assert_allclose(codes, expected, atol=1)


def test_runs_outlive_the_server(tmp_path: Path) -> None:
    """Stop the server and start another on the same data directory: the run, its link, its
    fork and its owner's right to delete it are all still there. Gold: the export read before
    the restart."""
    with TestClient(create_app(make_settings(data_dir=tmp_path))) as first:
        session_id, token = new_session(first)
        step(first, session_id, token, 10)
        slug = save(first, session_id, token, public=True)["slug"]
        before = first.get(f"/api/runs/{slug}").json()
    with TestClient(create_app(make_settings(data_dir=tmp_path))) as second:
        assert second.get(f"/api/runs/{slug}").json() == before
        assert [r["slug"] for r in second.get("/api/runs").json()] == [slug]
        assert second.get(f"/api/runs/{slug}/view").status_code == 200
        forked = second.post(f"/api/runs/{slug}/fork")
        assert forked.status_code == 201 and forked.json()["epoch"] == 10
        assert second.delete(f"/api/runs/{slug}", headers=auth(token)).status_code == 204


def test_a_diverged_session_is_not_saved(bare: TestClient) -> None:
    """A network whose weights are no longer finite cannot be imported, so its link could
    neither show nor continue it: 409 naming why, and nothing is stored."""
    session_id, token = new_session(bare, {"dataset": "reg-plane", "learning_rate": 10,
                                           "layers": [{"units": 8, "activation": "relu"}]})
    assert step(bare, session_id, token, 200)["status"] == "diverged"
    refused = bare.post(f"/api/sessions/{session_id}/runs", json={"public": True},
                        headers=auth(token))
    assert refused.status_code == 409
    assert "diverged: its weights are not finite numbers" in refused.json()["detail"]
    assert bare.get("/api/runs?sort=created").json() == []


def record(slug: str, owner: str, test_loss: float | None, public: bool = True,
           dataset: str = "circle") -> dict[str, Any]:
    """A runs row as the save route writes it (the export is not read by these queries)."""
    return {
        "slug": slug, "owner_hash": owner, "source_session": "s", "title": slug,
        "public": public, "dataset": dataset, "problem": "binary", "shape": "2-1",
        "parameters": 3, "epochs": 1, "optimizer": "sgd", "train_loss": test_loss,
        "test_loss": test_loss, "created_at": time.time(), "export": b"\x1f\x8b",
        "thumbnail": bytes(4), "thumbnail_size": 2,
    }


def test_run_queries_on_sqlite_and_postgresql(storage: Storage) -> None:
    """The quota count, the slug check and NULLS LAST order on both databases (PostgreSQL
    sorts NULLs first in DESC and last in ASC by default, SQLite the other way)."""
    engine = storage.engine
    for slug, loss in (("b", 0.5), ("none", None), ("a", 0.1), ("c", 0.9)):
        assert queries.insert_run(engine, record(slug, "owner", loss), 10) is None
    assert queries.insert_run(engine, record("hidden", "other", 0.0, public=False), 10) is None
    assert queries.insert_run(engine, record("a", "other", 0.2), 10) == -1  # slug taken
    assert queries.insert_run(engine, record("d", "owner", 0.2), 4) == 4  # at the quota
    assert queries.count_runs(engine, "owner") == 4
    ranked = queries.list_runs(engine, None, None, "test_loss", 10, 0)
    assert [r["slug"] for r in ranked] == ["a", "b", "c", "none"]
    assert [r["slug"] for r in queries.list_runs(engine, "xor", None, "test_loss", 10, 0)] == []
    row = queries.read_run(engine, "hidden", with_export=True)
    assert row is not None and row.export == b"\x1f\x8b" and row.owner_hash == "other"
    assert queries.delete_run(engine, "hidden") and not queries.delete_run(engine, "hidden")
    assert queries.read_run(engine, "hidden", with_export=False) is None


def test_the_view_cache_shares_builds_and_keeps_to_its_budget() -> None:
    """Three concurrent requests for one cold view cost one build; at most `builds` builds run
    at once; views past the byte budget push out the least recently used."""
    calls: list[str] = []
    running = [0, 0]  # now, most at once

    async def scenario() -> None:
        cache = ViewCache(budget=25, builds=1)

        def maker(slug: str, size: int) -> Any:
            async def make() -> bytes:
                calls.append(slug)
                running[0] += 1
                running[1] = max(running[1], running[0])
                await asyncio.sleep(0.01)
                running[0] -= 1
                return slug.encode() * size
            return make

        first = await asyncio.gather(*(cache.build("a", maker("a", 10)) for _ in range(3)),
                                     cache.build("b", maker("b", 10)))
        assert first == [b"a" * 10] * 3 + [b"b" * 10]
        assert cache.get("a") == b"a" * 10  # "a" is now the most recently used
        await cache.build("c", maker("c", 10))
        assert cache.get("b") is None and cache.get("a") is not None and cache.size == 20
        await cache.build("huge", maker("h", 30))  # over the budget: served, not kept
        assert cache.get("huge") is None and cache.building == {}
        building = asyncio.ensure_future(cache.build("gone", maker("g", 1)))
        await asyncio.sleep(0)
        cache.drop("gone")  # its run is deleted while the view is built: served, not kept
        assert await building == b"g" and cache.get("gone") is None and not cache.dropped

    # In a thread of its own: sync Playwright (browser tests in the same run) keeps a loop
    # running in this one, where asyncio.run refuses to start.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()
    assert calls == ["a", "b", "c", "h", "g"] and running[1] == 1
