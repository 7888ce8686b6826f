"""The compact export format (app/sessions/export_binary.py): long runs export and import.

Gold: the original session itself. A 500,000-epoch history (built synthetically in the compact
format, not trained) imports, exports back bit for bit, and the imported session trains on
exactly as the original session does (weights hash and history rows of every new epoch).
"""

import gzip
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.sessions.export_binary import (
    MAGIC,
    MEDIA_TYPE,
    compact_body_limit,
    export_compact,
    import_compact,
)
from app.sessions.session import TrainingSession
from app.settings import Settings
from tests.conftest import make_settings, owned_client

CONFIG = {"dataset": "xor", "n_samples": 60, "grid_resolution": 8, "optimizer": "adam",
          "learning_rate": 0.01, "augmentation": True}
LONG = 500_000


def unpack(body: bytes) -> tuple[dict[str, Any], np.ndarray]:
    """(header, rows) of a compact export, decoded here independently of the server's code."""
    content = gzip.decompress(body)
    assert content[:8] == MAGIC
    (length,) = struct.unpack_from("<I", content, 8)
    header = json.loads(content[12:12 + length])
    n, columns = header["history_rows"], header["history_columns"]
    planes = np.frombuffer(content, np.uint8, offset=12 + length).reshape(len(columns), 8, n)
    rows = np.ascontiguousarray(planes.transpose(2, 0, 1)).view("<f8")[:, :, 0]
    return header, rows


def pack(header: dict[str, Any], rows: np.ndarray) -> bytes:
    """A compact export from a header and float64 rows (the documented layout; stored gzip
    blocks, level 0: any gzip member is accepted, and this one is quick to build)."""
    text = json.dumps({**header, "history_rows": len(rows)}).encode()
    planes = np.ascontiguousarray(rows.T, dtype="<f8").view(np.uint8).reshape(
        rows.shape[1], len(rows), 8).transpose(0, 2, 1)
    return gzip.compress(MAGIC + struct.pack("<I", len(text)) + text + planes.tobytes(), 0)


def synthetic_history(n: int, columns: int) -> np.ndarray:
    """Loss-like columns, a NaN in a gradient-norm column (a diverged epoch's null)."""
    rng = np.random.default_rng(7)
    epochs = np.arange(1, n + 1)
    rows = 0.1 + 0.6 * np.exp(-epochs[:, None] / 4e4) + 1e-3 * rng.random((n, columns))
    rows[123, columns - 1] = math.nan
    return rows


def step(client: TestClient, session_id: str, n: int) -> dict[str, Any]:
    response = client.post(f"/api/sessions/{session_id}/commands", json={"type": "step", "n": n})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.fixture
def quiet_client() -> Iterator[TestClient]:
    """A client of an app without checkpoints (checkpoint_seconds = 0): storing a 500,000-row
    history is the persistence tests' cost (tests/sessions/test_persist_*), not this one's."""
    with TestClient(create_app(make_settings(checkpoint_seconds=0.0))) as test_client:
        yield owned_client(test_client)


def test_a_500000_epoch_run_exports_imports_and_continues_bit_identically(
    quiet_client: TestClient,
) -> None:
    """Build a 500,000-epoch compact export (the original's state at epoch 30 with a synthetic
    history), import it, train both 5 epochs, export both: the long one has the synthetic
    history bit for bit (NaN included), then exactly the original's 5 new rows, and the same
    weights, optimizer, RNG and early-stopping state."""
    client = quiet_client
    original = client.post("/api/sessions", json=CONFIG).json()["id"]
    step(client, original, 30)
    exported = client.get(f"/api/sessions/{original}/export", params={"format": "compact"})
    assert exported.status_code == 200
    assert exported.headers["content-type"] == MEDIA_TYPE
    header, rows = unpack(exported.content)
    assert rows.shape == (30, len(header["history_columns"]))
    long_rows = synthetic_history(LONG, rows.shape[1])
    long_body = pack({**header, "epoch": LONG}, long_rows)
    assert len(long_body) < Settings().max_import_bytes

    imported = client.post("/api/sessions/import", content=long_body,
                           headers={"Content-Type": MEDIA_TYPE})
    assert imported.status_code == 201, imported.text[:500]
    copy = imported.json()["id"]
    assert imported.json()["epoch"] == LONG

    gold = step(client, original, 5)
    continued = step(client, copy, 5)
    assert continued["weights_hash"] == gold["weights_hash"]
    assert continued["epoch"] == LONG + 5
    gold_header, gold_rows = unpack(
        client.get(f"/api/sessions/{original}/export", params={"format": "compact"}).content)
    back_header, back_rows = unpack(
        client.get(f"/api/sessions/{copy}/export", params={"format": "compact"}).content)
    assert back_rows[:LONG].tobytes() == long_rows.astype("<f8").tobytes()
    assert back_rows[LONG:].tobytes() == gold_rows[30:].tobytes()
    assert back_header == {**gold_header, "epoch": LONG + 5, "history_rows": LONG + 5}


def test_compact_and_json_exports_import_to_the_same_session(client: TestClient) -> None:
    """The same session through either format: identical JSON exports of the imports (gold:
    the JSON format, which keeps working)."""
    session_id = client.post("/api/sessions", json=CONFIG).json()["id"]
    step(client, session_id, 12)
    as_json = client.get(f"/api/sessions/{session_id}/export").content
    compact = client.get(f"/api/sessions/{session_id}/export", params={"format": "compact"})
    assert len(compact.content) < len(as_json)
    a = client.post("/api/sessions/import", content=as_json).json()["id"]
    b = client.post("/api/sessions/import", content=compact.content,
                    headers={"Content-Type": MEDIA_TYPE}).json()["id"]
    assert client.get(f"/api/sessions/{a}/export").json() == (
        client.get(f"/api/sessions/{b}/export").json())


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda body: body[:-20], "truncated"),
    (lambda body: body + b"xx", "after its gzip stream"),
    (lambda body: gzip.compress(b"NOTMAGIC" + gzip.decompress(body)[8:]), "does not start"),
    (lambda body: gzip.compress(gzip.decompress(body)[:-8]), "needs"),
    (lambda body: b"\x1f\x8b" + b"\x00" * 30, "not valid gzip"),
])
def test_a_broken_compact_export_is_a_422_naming_the_problem(
    client: TestClient, mangle: Any, message: str,
) -> None:
    session_id = client.post("/api/sessions", json=CONFIG).json()["id"]
    step(client, session_id, 3)
    body = client.get(f"/api/sessions/{session_id}/export", params={"format": "compact"}).content
    refused = client.post("/api/sessions/import", content=mangle(body),
                          headers={"Content-Type": MEDIA_TYPE})
    assert refused.status_code == 422, refused.text
    assert message in refused.text and len(refused.text) < 2000


def test_a_gzip_bomb_is_refused_before_it_is_inflated() -> None:
    """20 MB of zeros in a 20 KB gzip, against a ~2 MB bound: refused once past the bound."""
    settings = Settings(max_import_bytes=1_000_000, max_epoch_budget=10_000)
    bomb = gzip.compress(b"\x00" * 20_000_000, 1)
    with pytest.raises(ValueError, match="inflates to more than"):
        import_compact(bomb, settings)


def test_the_compact_export_round_trips_in_process() -> None:
    from app.sessions.config import SessionConfig

    session = TrainingSession(SessionConfig.model_validate(CONFIG))
    for _ in range(4):
        session.train_one_epoch()
    data = import_compact(export_compact(session))
    assert data.epoch == 4 and data._history_table is not None
    names, rows = data._history_table
    assert names == session.history.columns
    assert rows.tobytes() == session.history.rows().tobytes()


def test_a_declared_compact_import_may_exceed_max_import_bytes_up_to_the_longest_run() -> None:
    """max_import_bytes = 200 kB, max_epoch_budget = 100,000: a 30,000-epoch compact export
    (~1.3 MB) imports when its media type is declared (the limit is then the longest run the
    server can train, ~12 MB), and is a 413 naming max_import_bytes when it is not."""
    settings = make_settings(max_import_bytes=200_000, max_epoch_budget=100_000,
                             checkpoint_seconds=0.0)
    with TestClient(create_app(settings)) as raw:
        client = owned_client(raw)
        original = client.post("/api/sessions", json=CONFIG).json()["id"]
        step(client, original, 3)
        header, rows = unpack(client.get(f"/api/sessions/{original}/export",
                                         params={"format": "compact"}).content)
        body = gzip.compress(gzip.decompress(pack({**header, "epoch": 30_000},
                                                  synthetic_history(30_000, rows.shape[1]))), 1)
        assert 1_000_000 < len(body) < compact_body_limit(settings)
        plain = client.post("/api/sessions/import", content=body)
        assert plain.status_code == 413 and "max_import_bytes" in plain.text
        declared = client.post("/api/sessions/import", content=body,
                               headers={"Content-Type": MEDIA_TYPE})
        assert declared.status_code == 201, declared.text[:300]
        assert declared.json()["epoch"] == 30_000
        too_long = body + b"\0" * compact_body_limit(settings)
        refused = client.post("/api/sessions/import", content=too_long,
                              headers={"Content-Type": MEDIA_TYPE})
        assert refused.status_code == 413 and "max_epoch_budget" in refused.text
