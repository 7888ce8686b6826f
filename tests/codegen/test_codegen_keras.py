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

import subprocess
from pathlib import Path

import pytest

from app.codegen import render
from app.codegen.recipe import recipe_from_session
from tests.codegen.library_runs import (
    CONFIGS,
    ROOT,
    TOLERANCE,
    largest_error,
    require_export_extra,
    run_scripts,
    trained,
    trained_configs,
)

SAVE_WEIGHTS = """\
        for i, w in enumerate(model.get_weights()):
            arrays[f"{k}_{i}"] = w
"""


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
    require_export_extra(("keras", "torch"))
    sessions, recipes = trained_configs()
    scripts = {name: render(recipe, "keras") for name, recipe in recipes.items()}

    weights, outputs = run_scripts(tmp_path, scripts, SAVE_WEIGHTS)
    errors = {}
    for name, session in sessions.items():
        errors[name] = largest_error(weights[name], session.model.get_weights(), name)
        assert outputs[name]["type"] == "keras.src.models.sequential.Sequential", name
        test_loss = recipes[name].reported_test_loss
        assert f"final test loss {test_loss:.10f}"[:-2] in outputs[name]["printed"], name
    assert max(errors.values()) <= TOLERANCE, errors
