"""The PyTorch export retrains sessions to 1e-6 with the real torch (float64).

Gold: each session's own weights after it trained with the engine (`model.get_weights()`,
what the page shows), against the weights of its exported script run by the real library
(the `export` extra) in a separate Python process that imports nothing from this project: one
subprocess runs every script (each loaded with runpy, its module-level `model` read: its
state_dict, kernels (out, in), transposed back to Keras order here), so torch is imported once.
Configs cover every hidden activation (linear, sigmoid, tanh, relu, leaky_relu, elu, prelu,
rrelu), dropout, sigmoid and softmax outputs, every loss (BCE, mse on a
sigmoid output, mse for regression, sparse CCE), every optimizer (sgd, momentum and Nesterov,
adagrad, rmsprop with and without momentum, adam), every regularizer (l1, l2, l1_l2), max-norm
(that clips), batch norm, early stopping, the sin features, augmentation (sign flips, class
permutations, jitter of user points: numpy draws the scripts redo), and the three problem kinds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.codegen import render
from app.codegen.recipe import Recipe
from tests.codegen.library_runs import (
    TOLERANCE,
    largest_error,
    require_export_extra,
    run_scripts,
    trained_configs,
)

SAVE_WEIGHTS = """\
        outputs[path]["names"] = list(model.state_dict())
        for i, w in enumerate(model.state_dict().values()):
            arrays[f"{k}_{i}"] = w.numpy().T if w.ndim == 2 else w.numpy()
"""


def state_names(recipe: Recipe) -> list[str]:
    """The state_dict keys the script promises: the playground's layer names, in Keras order."""
    names = []
    for layer in recipe.layers:
        names += [f"{layer.name}.weight", f"{layer.name}.bias"]
        if layer.batch_norm:
            names += [f"{layer.name}_batch_norm.{key}"
                      for key in ("weight", "bias", "running_mean", "running_var")]
        if layer.activation == "prelu":
            names.append(f"{layer.name}_prelu.weight")
    return names


@pytest.mark.export
def test_torch_scripts_reproduce_every_config(tmp_path: Path) -> None:
    """Every config's PyTorch script, run by torch in float64, lands on the session's weights
    to 1e-6 (measured ~1e-12), its `model` is a torch.nn.Sequential whose state_dict holds the
    weights in Keras order (named after the playground's layers, kernels (out, in)) and it
    prints the playground's final test loss (rendering and ruff: test_codegen_keras.py's
    test_scripts_render_compile_and_lint)."""
    require_export_extra(("torch",))
    sessions, recipes = trained_configs()
    scripts = {name: render(recipe, "pytorch") for name, recipe in recipes.items()}

    weights, outputs = run_scripts(tmp_path, scripts, SAVE_WEIGHTS)
    errors = {}
    for name, session in sessions.items():
        errors[name] = largest_error(weights[name], session.model.get_weights(), name)
        assert outputs[name]["type"] == "torch.nn.modules.container.Sequential", name
        assert outputs[name]["names"] == state_names(recipes[name]), name
        test_loss = recipes[name].reported_test_loss
        assert f"final test loss {test_loss:.10f}"[:-2] in outputs[name]["printed"], name
    assert max(errors.values()) <= TOLERANCE, errors
