"""The numpy export retrains sessions exactly (issue 11).

Gold: each session's own weights after it trained (`model.get_weights()`, what the page shows),
against the weights of its exported script run by a separate Python process that imports
nothing from this project (one subprocess runs every script: each is loaded with runpy and its
module-level `model` read). Configs cover every hidden activation (linear, sigmoid, tanh, relu,
leaky_relu, elu, prelu, rrelu) and softmax outputs, every loss (BCE, mse on a sigmoid output,
mse for regression, sparse CCE), every optimizer (sgd, momentum and Nesterov, adagrad, rmsprop
with momentum, adam), every regularizer (l1, l2, l1_l2), max-norm, batch norm, dropout, early
stopping, user points, every feature, augmentation (rotations, mirrors with class
permutations, sign flips, jitter) and the three problem kinds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.codegen import render
from app.codegen.calls import code_call
from app.codegen.recipe import Recipe, checked, recipe_from_session
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.session import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_samples": 40, "layers": [{"units": 3, "activation": "tanh"}]}

CONFIGS: dict[str, dict[str, Any]] = {
    "binary_tanh_sgd": {**SMALL, "layers": [{"units": 4}, {"units": 2}]},
    "binary_relu_nesterov_l1": {
        **SMALL, "dataset": "xor", "features": ["x1x2", "x1_sq", "x2_sq"],
        "layers": [{"units": 3, "activation": "relu"}], "optimizer": "momentum",
        "nesterov": True, "regularization": "l1", "regularization_rate": 0.01,
    },
    "binary_sigmoid_adagrad_l2_maxnorm": {
        **SMALL, "dataset": "moons", "layers": [{"units": 3, "activation": "sigmoid"}],
        "optimizer": "adagrad", "learning_rate": 0.3, "initial_accumulator_value": 0.2,
        "regularization": "l2", "regularization_rate": 0.003, "max_norm": 0.5,
    },
    "binary_leaky_rmsprop_l1l2_sin": {
        **SMALL, "dataset": "spiral", "features": ["x1", "x2", "sin_x1", "sin_x2"],
        "layers": [{"units": 3, "activation": "leaky_relu"}], "optimizer": "rmsprop",
        "momentum": 0.5, "rho": 0.8, "regularization": "l1_l2", "regularization_rate": 0.001,
    },
    "binary_elu_adam_batchnorm": {
        **SMALL, "dataset": "gauss", "optimizer": "adam", "learning_rate": 0.01,
        "layers": [{"units": 3, "activation": "elu", "batch_norm": True}],
    },
    "binary_mse_linear_momentum": {
        **SMALL, "loss": "mse", "optimizer": "sgd", "momentum": 0.7,
        "layers": [{"units": 2, "activation": "linear"}],
    },
    "multiclass_prelu_adam": {
        "dataset": "blobs-3", "n_samples": 45, "optimizer": "adam",
        "layers": [{"units": 3, "activation": "prelu"}],
    },
    "multiclass_rrelu_dropout_rmsprop": {
        "dataset": "spiral-3", "n_samples": 45, "optimizer": "rmsprop",
        "layers": [{"units": 4, "activation": "rrelu", "dropout": 0.25}, {"units": 3}],
    },
    # PReLU / RReLU after a batch norm: their own layers, after the norm (as in Keras).
    "binary_prelu_batchnorm_adam": {
        **SMALL, "dataset": "xor", "optimizer": "adam", "learning_rate": 0.01,
        "layers": [{"units": 3, "activation": "prelu", "batch_norm": True}],
    },
    "multiclass_rrelu_batchnorm_sgd": {
        "dataset": "blobs-3", "n_samples": 45,
        "layers": [{"units": 3, "activation": "rrelu", "batch_norm": True}],
    },
    "regression_tanh_early_stopping": {
        "dataset": "reg-plane", "n_samples": 40, "layers": [{"units": 3}],
        "learning_rate": 0.3, "early_stopping_patience": 0, "batch_size": 7,
    },
    "user_points_relu_he": {
        "points": [[0.1 * i, -0.05 * i * i, float(i % 2)] for i in range(-10, 10)],
        "test_points": [[0.3, 0.2, 1.0], [-0.4, 0.1, 0.0]], "initializer": "he_normal",
        "init_scale": 1.5, "layers": [{"units": 3, "activation": "relu"}], "batch_size": 3,
        "augmentation": True,
    },
    "binary_circle_augmented": {**SMALL, "augmentation": True},
    "multiclass_blobs_augmented": {"dataset": "blobs-4", "n_samples": 40, "augmentation": True},
    "regression_augmented": {"dataset": "reg-gauss", "n_samples": 40, "augmentation": True},
}
EPOCHS = 4

# Loads each script (argv: a JSON list of paths, then the .npz to write) and saves its weights.
DRIVER = textwrap.dedent('''
    import contextlib, io, json, runpy, sys
    import numpy as np
    paths, out = json.loads(sys.argv[1]), sys.argv[2]
    arrays, outputs = {}, {}
    for k, path in enumerate(paths):
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            model = runpy.run_path(path, run_name="__main__")["model"]
        outputs[path] = text.getvalue()
        for i, w in enumerate(model.get_weights()):
            arrays[f"{k}_{i}"] = w
    np.savez(out, **arrays)
    print(json.dumps(outputs))
''')


def trained(config: dict[str, Any], epochs: int = EPOCHS) -> TrainingSession:
    """A session of `config` after `epochs` epochs (fewer when early stopping ends it)."""
    session = TrainingSession(SessionConfig.model_validate(config), "test")
    for _ in range(epochs):
        if session.status == "finished":
            break
        session.train_one_epoch()
    return session


def run_scripts(
    tmp_path: Path, scripts: dict[str, str]
) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """Write and run every script in ONE fresh interpreter; each one's weights and output."""
    paths = []
    for name, text in scripts.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    out = tmp_path / "weights.npz"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(paths), str(out)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    saved = np.load(out)
    weights: dict[str, list[Any]] = {}
    for k, name in enumerate(scripts):
        count = sum(1 for key in saved.files if key.startswith(f"{k}_"))
        weights[name] = [saved[f"{k}_{i}"] for i in range(count)]
    return weights, {name: printed[path] for name, path in zip(scripts, paths, strict=True)}


def assert_same(mine: list[Any], gold: tuple[Any, ...] | list[Any], what: str) -> None:
    """Equal to 1e-12 relative (of each array's largest magnitude, at least 1)."""
    assert len(mine) == len(gold), what
    for i, (a, b) in enumerate(zip(mine, gold, strict=True)):
        assert a.shape == b.shape, (what, i)
        scale = max(1.0, float(np.max(np.abs(b))))
        assert float(np.max(np.abs(a - b))) <= 1e-12 * scale, (what, i, np.max(np.abs(a - b)))


def test_numpy_scripts_reproduce_every_config(tmp_path: Path) -> None:
    """Every config's script lands on the session's weights to 1e-12, passes ruff, and says
    it is exact; its printed final losses are the playground's."""
    sessions = {name: trained(config) for name, config in CONFIGS.items()}
    early = sessions["regression_tanh_early_stopping"]
    assert early.status == "finished" and early.epoch < EPOCHS, "early stopping must act"
    recipes = {name: recipe_from_session(s) for name, s in sessions.items()}
    scripts = {name: render(r, "numpy") for name, r in recipes.items()}
    for name, text in scripts.items():
        assert "Exact:" in text and "NOT EXACT" not in text, name
        assert "from app" not in text and "import app" not in text, name
    weights, printed = run_scripts(tmp_path, scripts)
    for name, recipe in recipes.items():
        assert_same(weights[name], sessions[name].model.get_weights(), name)
        assert f"(the playground showed {recipe.reported_test_loss!r})" in printed[name], name
        assert "largest difference from the playground's weights: 0" in printed[name] or (
            "e-1" in printed[name].rsplit(":", 1)[-1]), printed[name]
    lint = subprocess.run(
        [str(ROOT / ".venv/bin/ruff"), "check", "--config", str(ROOT / "pyproject.toml"),
         *(str(tmp_path / f"{name}.py") for name in scripts)],
        capture_output=True, text=True, timeout=60,
    )
    assert lint.returncode == 0, lint.stdout[-3000:]


def test_changes_are_named_and_initial_edits_kept(tmp_path: Path) -> None:
    """A mid-run change makes the script say NOT EXACT and why; a weight edited at epoch 0 is
    part of the initial weights (the script still lands on the session's weights); an
    imported session's unknown past is cleared by a replay that matches it bit for bit (and
    refused when its weights differ by 1e-9), the worker keeping the verdict."""
    edited = TrainingSession(SessionConfig.model_validate(CONFIGS["binary_tanh_sgd"]), "e")
    edited.edit_weight(0, "kernel", [0, 1], 0.75)
    for _ in range(3):
        edited.train_one_epoch()
    recipe = recipe_from_session(edited)
    assert recipe.exact and recipe.initial_weights[0][0, 1] == 0.75

    changed = trained(CONFIGS["binary_tanh_sgd"], 2)
    changed.update({"learning_rate": 0.1, "frame_rate": 10.0})
    changed.train_one_epoch()
    changed_recipe = recipe_from_session(changed)
    assert changed_recipe.changes == ("at epoch 2: learning_rate changed",)
    assert "NOT EXACT" in render(changed_recipe, "numpy")

    exported = SessionExport.model_validate(export_session(trained(CONFIGS["binary_tanh_sgd"], 3)))
    imported = recipe_from_session(import_session(exported, "imported"))
    assert imported.changes and imported.changes[0].startswith("its first 3 epochs")
    assert checked(imported, 10_000).changes == ()
    assert "more than code_replay_max_steps = 10" in checked(imported, 10).changes[0]
    # In the worker (op "code") the verdict is kept: the next export does not replay again.
    session = import_session(exported, "again")
    assert code_call(session, {"kind": "session"}).changes == ()
    assert session.epochs_trained_here == session.epoch == 3 and session.code_changes == []
    tampered = import_session(exported, "tampered")
    tampered.model.layers[0].params["kernel"][0, 0] += 1e-9
    refused = code_call(tampered, {"kind": "session"}).changes
    assert "does not land on its weights" in refused[0]
    assert recipe_from_session(tampered).changes == refused  # remembered, not replayed

    weights, _ = run_scripts(tmp_path, {"edited": render(recipe, "numpy")})
    assert_same(weights["edited"], edited.model.get_weights(), "edited")


def test_recipe_batch_orders_are_the_sessions() -> None:
    """The recipe's batch orders are the ones the session's model drew (its own generator)."""
    session = TrainingSession(SessionConfig.model_validate(CONFIGS["binary_tanh_sgd"]), "o")
    rng = np.random.default_rng(np.random.SeedSequence(0).spawn(3)[1])
    drawn = [rng.permutation(len(session.data.x_train)) for _ in range(3)]
    for _ in range(3):
        session.train_one_epoch()
    recipe: Recipe = recipe_from_session(session)
    assert all(np.array_equal(a, b) for a, b in zip(recipe.batch_orders(), drawn, strict=True))
    assert list(recipe.order_check) == drawn[0][:8].tolist()
    assert np.array_equal(recipe.inputs("train"), session.data.x_train)


@pytest.mark.parametrize("framework", ["fortran"])
def test_unknown_framework_is_refused(framework: str) -> None:
    """render names the value and the choices."""
    recipe = recipe_from_session(trained(SMALL, 1))
    with pytest.raises(ValueError, match="'fortran' is unknown; expected one of: numpy, keras"):
        render(recipe, framework)
