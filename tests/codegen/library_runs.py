"""What the Keras and PyTorch export tests share: the configs (every hidden activation,
dropout, every loss, optimizer and regularizer, a max-norm that clips, batch norm, early stopping
that stops, sin features, augmentation, user points, the three problem kinds), training them with
the engine, running scripts in one fresh interpreter and the error measure."""

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

from app.codegen.recipe import Recipe, recipe_from_session
from app.sessions.config import SessionConfig
from app.sessions.session import TrainingSession

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"n_samples": 40}
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
        SAVE_WEIGHTS
    np.savez(out, **arrays)
    print(json.dumps(outputs))
''')


def require_export_extra(libraries: tuple[str, ...]) -> None:
    """Fail (not skip) with what to install when a library the scripts need is missing."""
    missing = [name for name in libraries if importlib.util.find_spec(name) is None]
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


def run_scripts(tmp_path: Path, scripts: dict[str, str], save_weights: str) -> tuple[
    dict[str, list[Any]], dict[str, dict[str, Any]]
]:
    """Write and run every script in ONE fresh interpreter; each one's weights and output.
    `save_weights`: the driver's lines (in its loop over scripts) that put script k's `model`
    weights, in Keras order, into `arrays[f"{k}_{i}"]`."""
    paths = []
    for name, text in scripts.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    out = tmp_path / "weights.npz"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER.replace(
             "    SAVE_WEIGHTS\n", textwrap.indent(textwrap.dedent(save_weights), "    ")),
         json.dumps(paths), str(out)],
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


def trained_configs() -> tuple[dict[str, TrainingSession], dict[str, Recipe]]:
    """Every config trained EPOCHS epochs (checking that early stopping and max-norm act) and
    its recipe."""
    sessions = {name: trained(config) for name, config in CONFIGS.items()}
    early = sessions["regression_tanh_early_stopping"]
    assert early.status == "finished" and early.epoch < EPOCHS, "early stopping must act"
    clipped = sessions["binary_sigmoid_adagrad_l2_maxnorm"].model.get_weights()[0]
    assert np.isclose(np.linalg.norm(clipped, axis=0).max(), 0.5), "max-norm must clip"
    return sessions, {name: recipe_from_session(s) for name, s in sessions.items()}
