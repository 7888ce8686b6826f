"""The Keras export retrains sessions to 1e-6 with the real Keras 3 (torch backend, float64).

Gold: each session's own weights after it trained with the engine (`model.get_weights()`,
what the page shows), against the weights of its exported script run by the real library
(the `export` extra) in a separate Python process that imports nothing from this project: one
subprocess runs every script (each loaded with runpy, its module-level `model` read), so Keras
and torch are imported once. Configs cover every hidden activation (linear, sigmoid, tanh,
relu, leaky_relu, elu, prelu, rrelu), dropout, sigmoid and softmax
outputs, every loss (BCE, mse on a sigmoid output, mse for regression, sparse CCE), every
optimizer (sgd, momentum and Nesterov, adagrad, rmsprop with and without momentum, adam),
every regularizer (l1, l2, l1_l2), max-norm (that clips), batch norm, early stopping, the sin
features, augmentation (sign flips, class permutations, jitter of user points: numpy draws the
scripts redo), and the three problem kinds.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.codegen import render
from app.codegen.recipe import Recipe, recipe_from_session
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_samples": 40}
# Shared with test_codegen_torch.py's configs by copy: each file reads on its own.
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
    "multiclass_relu_batchnorm_rmsprop_maxnorm": {
        "dataset": "spiral-3", "n_samples": 45, "optimizer": "rmsprop", "max_norm": 0.6,
        "layers": [{"units": 4, "activation": "relu", "batch_norm": True}, {"units": 3}],
    },
    "regression_tanh_early_stopping": {
        "dataset": "reg-plane", "n_samples": 40, "layers": [{"units": 3}],
        "learning_rate": 0.3, "early_stopping_patience": 0, "batch_size": 7,
    },
    "regression_relu_adagrad": {
        "dataset": "reg-gauss", "n_samples": 40, "optimizer": "adagrad", "learning_rate": 0.1,
        "layers": [{"units": 3, "activation": "relu"}], "augmentation": True,
    },
    "multiclass_augmented_tanh_sgd": {
        "dataset": "blobs-4", "n_samples": 48, "augmentation": True, "layers": [{"units": 3}],
    },
    # Dropout masks and RReLU slopes: numpy draws from the playground's noise generator.
    "multiclass_rrelu_dropout_rmsprop": {
        "dataset": "spiral-3", "n_samples": 45, "optimizer": "rmsprop",
        "layers": [{"units": 4, "activation": "rrelu", "dropout": 0.25}, {"units": 3}],
    },
    "binary_augmented_user_points": {
        "points": [[0.1 * i, -0.05 * i * i, float(i % 2)] for i in range(-10, 10)],
        "augmentation": True, "layers": [{"units": 3, "activation": "relu"}], "batch_size": 3,
    },
}
EPOCHS = 5
TOLERANCE = 1e-6  # the bound, relative to each array's largest magnitude (at least 1)

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
        outputs[path] = {"printed": text.getvalue(), "type": type(model).__module__ + "." +
                         type(model).__qualname__}
        for i, w in enumerate(model.get_weights()):
            arrays[f"{k}_{i}"] = w
    np.savez(out, **arrays)
    print(json.dumps(outputs))
''')


def require_export_extra() -> None:
    """Fail (not skip) with what to install when Keras or torch is missing."""
    missing = [name for name in ("keras", "torch") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed: the export tests need the `export` extra "
            "(.venv/bin/pip install -e '.[export]' --find-links /opt/wheels; scripts/test.sh "
            "does it)"
        )


def trained(config: dict[str, Any], epochs: int = EPOCHS) -> TrainingSession:
    """A session of `config` after `epochs` epochs (fewer when early stopping ends it)."""
    session = TrainingSession(SessionConfig.model_validate(config), "test")
    for _ in range(epochs):
        if session.status == "finished":
            break
        session.train_one_epoch()
    return session


def run_scripts(tmp_path: Path, scripts: dict[str, str]) -> tuple[
    dict[str, list[Any]], dict[str, dict[str, str]]
]:
    """Write and run every script in ONE fresh interpreter; each one's weights and output."""
    paths = []
    for name, text in scripts.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    out = tmp_path / "weights.npz"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(paths), str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout.strip().splitlines()[-1])
    saved = np.load(out)
    weights: dict[str, list[Any]] = {}
    for k, name in enumerate(scripts):
        count = sum(1 for key in saved.files if key.startswith(f"{k}_"))
        weights[name] = [saved[f"{k}_{i}"] for i in range(count)]
    return weights, {name: printed[path] for name, path in zip(scripts, paths, strict=True)}


def largest_error(mine: list[Any], gold: list[Any], what: str) -> float:
    """max over arrays of |mine - gold| / max(1, max |gold|); shapes must agree."""
    assert len(mine) == len(gold), what
    worst = 0.0
    for i, (a, b) in enumerate(zip(mine, gold, strict=True)):
        assert a.shape == b.shape, (what, i, a.shape, b.shape)
        scale = max(1.0, float(np.max(np.abs(b))))
        worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def lint(tmp_path: Path, names: list[str]) -> None:
    """ruff with the project's settings passes on the scripts."""
    done = subprocess.run(
        [str(ROOT / ".venv/bin/ruff"), "check", "--config", str(ROOT / "pyproject.toml"),
         *(str(tmp_path / f"{name}.py") for name in names)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_scripts_render_compile_and_lint(tmp_path: Path) -> None:
    """Without Keras or torch (the normal suite): every config's Keras and PyTorch script
    renders, compiles, passes ruff with the project's settings, imports nothing from this
    project and says it is exact (the dropout/RReLU config: its draws are the playground's);
    a mid-run change makes both say NOT EXACT and why."""
    recipes = {name: recipe_from_session(trained(config, 1)) for name, config in CONFIGS.items()}
    names = []
    for framework in ("keras", "pytorch"):
        for name, recipe in recipes.items():
            text = render(recipe, framework)
            compile(text, f"{name}_{framework}.py", "exec")
            assert "from app" not in text and "import app" not in text, name
            assert "Exact:" in text and "NOT EXACT" not in text, name
            (tmp_path / f"{name}_{framework}.py").write_text(text)
            names.append(f"{name}_{framework}")
        random_text = render(recipes["multiclass_rrelu_dropout_rmsprop"], framework)
        assert "Its random draws (dropout, rrelu) come from the playground's" in random_text
    lint(tmp_path, names)
    changed = trained(CONFIGS["binary_tanh_sgd"], 2)
    changed.update({"learning_rate": 0.1})
    changed.train_one_epoch()
    for framework in ("keras", "pytorch"):
        text = render(recipe_from_session(changed), framework)
        assert "NOT EXACT" in text and "- at epoch 2: learning_rate changed." in text


@pytest.mark.export
def test_keras_scripts_reproduce_every_config(tmp_path: Path) -> None:
    """Every config's Keras script, run by Keras 3 on torch in float64, lands on the session's
    weights to 1e-6 (measured ~1e-12), its `model` is a keras.Sequential and it prints the
    playground's final test loss."""
    require_export_extra()
    sessions = {name: trained(config) for name, config in CONFIGS.items()}
    early = sessions["regression_tanh_early_stopping"]
    assert early.status == "finished" and early.epoch < EPOCHS, "early stopping must act"
    clipped = sessions["binary_sigmoid_adagrad_l2_maxnorm"].model.get_weights()[0]
    assert np.isclose(np.linalg.norm(clipped, axis=0).max(), 0.5), "max-norm must clip"
    recipes: dict[str, Recipe] = {name: recipe_from_session(s) for name, s in sessions.items()}
    scripts = {name: render(recipe, "keras") for name, recipe in recipes.items()}

    weights, outputs = run_scripts(tmp_path, scripts)
    errors = {}
    for name, session in sessions.items():
        errors[name] = largest_error(weights[name], session.model.get_weights(), name)
        assert outputs[name]["type"] == "keras.src.models.sequential.Sequential", name
        test_loss = recipes[name].reported_test_loss
        assert f"final test loss {test_loss:.10f}"[:-2] in outputs[name]["printed"], name
    assert max(errors.values()) <= TOLERANCE, errors
