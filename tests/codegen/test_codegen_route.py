"""GET /api/sessions/{id}/code and GET /api/runs/{slug}/code (issue 11).

Golds: the route's numpy script is the renderer's own text for the session's recipe (the
worker read the same state), and run in a subprocess it lands on the weights the session
reports (its export's weights, to 1e-12); owner rules as GET .../export (401 without a token,
403 with another's, 404 for no session); a framework outside numpy|keras|pytorch is a 422
naming the value and the choices; a saved run's code is public and its replayed past makes
it exact.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings

CONFIG = {"n_samples": 40, "layers": [{"units": 3, "activation": "relu"}],
          "optimizer": "adam", "learning_rate": 0.01}


@pytest.fixture
def bare() -> Iterator[TestClient]:
    """A TestClient without owner hooks: every request says which token it carries."""
    with TestClient(create_app(make_settings())) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def trained_session(client: TestClient, epochs: int) -> tuple[str, str]:
    response = client.post("/api/sessions", json=CONFIG)
    assert response.status_code == 201, response.text
    session_id, token = response.json()["id"], response.json()["owner_token"]
    done = client.post(f"/api/sessions/{session_id}/commands",
                       json={"type": "step", "n": epochs}, headers=auth(token))
    assert done.status_code in (200, 202), done.text
    deadline = time.monotonic() + 30
    while client.get(f"/api/sessions/{session_id}").json()["epoch"] < epochs:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return session_id, token


def run_script(tmp_path: Path, text: str) -> list[Any]:
    """The script's `model.get_weights()`, from a fresh interpreter."""
    path = tmp_path / "script.py"
    path.write_text(text)
    out = tmp_path / "weights.npz"
    driver = (
        "import runpy, sys, numpy as np\n"
        "model = runpy.run_path(sys.argv[1], run_name='__main__')['model']\n"
        "np.savez(sys.argv[2], *model.get_weights())\n"
    )
    done = subprocess.run([sys.executable, "-c", driver, str(path), str(out)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    saved = np.load(out)
    return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def test_session_code_is_the_owners_and_reproduces_the_session(
    bare: TestClient, tmp_path: Path
) -> None:
    """numpy script: attachment, exact, lands on the export's weights; keras and pytorch
    scripts are served too; owner rules; 422."""
    session_id, token = trained_session(bare, 3)
    url = f"/api/sessions/{session_id}/code"
    response = bare.get(url, params={"framework": "numpy"}, headers=auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/x-python")
    assert response.headers["content-disposition"] == (
        'attachment; filename="circle_2-3-1_numpy.py"')
    assert response.headers["x-code-exact"] == "true"
    assert bare.get(url, headers=auth(token)).text == response.text  # numpy is the default
    exported = bare.get(f"/api/sessions/{session_id}/export", headers=auth(token)).json()
    mine = run_script(tmp_path, response.text)
    gold = [np.asarray(w, dtype=np.float64) for w in exported["weights"]]
    assert len(mine) == len(gold)
    for a, b in zip(mine, gold, strict=True):
        assert float(np.max(np.abs(a - b))) <= 1e-12 * max(1.0, float(np.max(np.abs(b))))

    for framework, marker in (("keras", "import keras\n"), ("pytorch", "import torch\n")):
        other_script = bare.get(url, params={"framework": framework}, headers=auth(token))
        assert other_script.status_code == 200, other_script.text
        assert marker in other_script.text
        assert other_script.headers["content-disposition"].endswith(f'_{framework}.py"')
        assert other_script.headers["x-code-exact"] == "true"

    assert bare.get(url).status_code == 401
    other = bare.post("/api/sessions", json={}).json()["owner_token"]
    assert bare.get(url, headers=auth(other)).status_code == 403
    assert bare.get("/api/sessions/nope/code", headers=auth(token)).status_code == 404
    refused = bare.get(url, params={"framework": "fortran"}, headers=auth(token))
    assert refused.status_code == 422
    text = refused.text
    assert "fortran" in text and "numpy" in text and "keras" in text and "pytorch" in text


def test_mid_run_change_is_not_exact(bare: TestClient) -> None:
    """A learning rate changed after epoch 1 makes the script say why it cannot match."""
    session_id, token = trained_session(bare, 1)
    patched = bare.patch(f"/api/sessions/{session_id}", json={"learning_rate": 0.2},
                         headers=auth(token))
    assert patched.status_code == 200, patched.text
    response = bare.get(f"/api/sessions/{session_id}/code", headers=auth(token))
    assert response.headers["x-code-exact"] == "false"
    assert "at epoch 1: learning_rate changed" in response.text


def test_saved_run_code_is_public_and_exact(bare: TestClient) -> None:
    """A run's code needs no token; the replay of its 3 epochs vouches for it (exact)."""
    session_id, token = trained_session(bare, 3)
    saved = bare.post(f"/api/sessions/{session_id}/runs", json={"title": "t"},
                      headers=auth(token))
    assert saved.status_code == 201, saved.text
    slug = saved.json()["slug"]
    response = bare.get(f"/api/runs/{slug}/code")
    assert response.status_code == 200, response.text
    assert response.headers["x-code-exact"] == "true"
    assert f"saved run {slug}, epoch 3" in response.text
    assert bare.get(f"/api/runs/{slug}/code").text == response.text  # from the recipe cache
    session_code = bare.get(f"/api/sessions/{session_id}/code", headers=auth(token)).text
    # The same data, weights and settings: only the source line differs.
    assert session_code.split("\n", 3)[3] == response.text.split("\n", 3)[3]
    assert bare.get("/api/runs/abcdefabcdef/code").status_code == 404
