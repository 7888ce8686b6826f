"""How close the Keras and PyTorch exports land to the playground's weights (issue 11).

Trains sessions with the engine, renders their Keras and PyTorch scripts, runs the scripts with
the real libraries (the `export` extra) in one subprocess per framework, and prints each one's
largest weight difference relative to max(1, the array's largest magnitude). `--ablate` also
runs the xor example with each written-out difference replaced by the library's stock piece
(no float64 fix, keras.constraints.MaxNorm, torch.optim.Adam, torch.nn.BatchNorm1d), to show
what each would cost.

    .venv/bin/python bench/code_export_libraries.py [--epochs 5 50 300] [--ablate]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.codegen import render  # noqa: E402
from app.codegen.recipe import Recipe, recipe_from_session  # noqa: E402
from app.sessions.config import SessionConfig  # noqa: E402
from app.sessions.session import TrainingSession  # noqa: E402

SMALL = {"n_samples": 40}
CONFIGS: dict[str, dict[str, Any]] = {
    "tfp_default": {},
    "relu_nesterov_l1": {
        **SMALL, "dataset": "xor", "features": ["x1x2", "x1_sq", "x2_sq"],
        "layers": [{"units": 3, "activation": "relu"}], "optimizer": "momentum",
        "nesterov": True, "regularization": "l1", "regularization_rate": 0.01,
    },
    "sigmoid_adagrad_l2_maxnorm": {
        **SMALL, "dataset": "moons", "layers": [{"units": 3, "activation": "sigmoid"}],
        "optimizer": "adagrad", "learning_rate": 0.3, "regularization": "l2",
        "regularization_rate": 0.003, "max_norm": 0.5,
    },
    "leaky_rmsprop_l1l2_sin": {
        **SMALL, "dataset": "spiral", "features": ["x1", "x2", "sin_x1", "sin_x2"],
        "layers": [{"units": 3, "activation": "leaky_relu"}], "optimizer": "rmsprop",
        "momentum": 0.5, "regularization": "l1_l2", "regularization_rate": 0.001,
    },
    "elu_adam_batchnorm": {
        **SMALL, "dataset": "gauss", "optimizer": "adam", "learning_rate": 0.01,
        "layers": [{"units": 3, "activation": "elu", "batch_norm": True}],
    },
    "multiclass_prelu_adam": {
        "dataset": "blobs-3", "n_samples": 45, "optimizer": "adam",
        "layers": [{"units": 3, "activation": "prelu"}],
    },
    "regression_relu_adagrad": {
        "dataset": "reg-gauss", "n_samples": 40, "optimizer": "adagrad", "learning_rate": 0.1,
        "layers": [{"units": 3, "activation": "relu"}],
    },
}
XOR_EXAMPLE = {
    "dataset": "xor", "n_samples": 100, "noise": 0.1, "optimizer": "adam", "learning_rate": 0.01,
    "regularization": "l2", "regularization_rate": 0.001,
}
DRIVER = textwrap.dedent('''
    import contextlib, io, json, runpy, sys
    import numpy as np
    paths, out, kind = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    arrays = {}
    for k, path in enumerate(paths):
        with contextlib.redirect_stdout(io.StringIO()):
            model = runpy.run_path(path, run_name="__main__")["model"]
        if kind == "keras":
            weights = model.get_weights()
        else:
            weights = [w.numpy().T if w.ndim == 2 else w.numpy()
                       for name, w in model.state_dict().items() if "num_batches" not in name]
        for i, w in enumerate(weights):
            arrays[f"{k}_{i}"] = w
    np.savez(out, **arrays)
''')


def trained(config: dict[str, Any], epochs: int) -> TrainingSession:
    """A session of `config` after `epochs` epochs (fewer if early stopping ends it)."""
    session = TrainingSession(SessionConfig.model_validate(config), "bench")
    for _ in range(epochs):
        session.train_one_epoch()
    return session


def run(scripts: dict[str, str], kind: str) -> tuple[dict[str, list[Any]], float]:
    """Every script in one subprocess: each one's weights in Keras order, and the wall time."""
    folder = Path(tempfile.mkdtemp())
    paths = []
    for name, text in scripts.items():
        path = folder / f"{name}.py"
        path.write_text(text)
        paths.append(str(path))
    out = folder / "weights.npz"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", DRIVER, json.dumps(paths), str(out), kind],
                   check=True, cwd=folder)
    seconds = time.perf_counter() - start
    saved = np.load(out)
    weights = {}
    for k, name in enumerate(scripts):
        count = sum(1 for key in saved.files if key.startswith(f"{k}_"))
        weights[name] = [saved[f"{k}_{i}"] for i in range(count)]
    return weights, seconds


def error(mine: list[Any], gold: tuple[Any, ...]) -> float:
    """max over arrays of |mine - gold| / max(1, max |gold|)."""
    return max(
        float(np.max(np.abs(a - b), initial=0.0)) / max(1.0, float(np.max(np.abs(b))))
        for a, b in zip(mine, gold, strict=True)
    )


def ablations() -> None:
    """The xor example (and a batch-norm and a max-norm run) with each written-out piece
    replaced by the library's stock one."""
    example = recipe_from_session(trained(XOR_EXAMPLE, 50))
    batch_norm = recipe_from_session(trained({
        **SMALL, "dataset": "gauss", "learning_rate": 0.05,
        "layers": [{"units": 3, "batch_norm": True}]}, 50))
    max_norm = recipe_from_session(trained({
        **SMALL, "dataset": "moons", "layers": [{"units": 3, "activation": "sigmoid"}],
        "optimizer": "adagrad", "learning_rate": 0.3, "max_norm": 0.5}, 50))
    variants: list[tuple[str, str, Recipe, str, str]] = [
        # First: the float64 fix, once made, holds for the rest of the process.
        ("keras", "no float64 fix", example,
         'keras_dtypes.BIT64_TO_BIT32_DTYPE["float64"] = "float64"', "pass"),
        ("keras", "as exported (xor example)", example, "", ""),
        ("keras", "as exported (max-norm run)", max_norm, "", ""),
        ("keras", "keras.constraints.MaxNorm", max_norm,
         "kernel_constraint=MaxNorm(MAX_NORM)",
         "kernel_constraint=keras.constraints.MaxNorm(MAX_NORM)"),
        ("pytorch", "as exported (xor example)", example, "", ""),
        ("pytorch", "torch.optim.Adam", example,
         "return Adam(model.parameters(), learning_rate=0.01, beta_1=0.9, beta_2=0.999, "
         "epsilon=1e-07)",
         "return torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.999), eps=1e-07)"),
        ("pytorch", "as exported (batch-norm run)", batch_norm, "", ""),
        ("pytorch", "torch.nn.BatchNorm1d", batch_norm,
         "BatchNorm(3, momentum=0.99, epsilon=0.001)",
         "nn.BatchNorm1d(3, momentum=0.01, eps=0.001)"),
    ]
    for kind in ("keras", "pytorch"):
        scripts, golds = {}, {}
        for index, (framework, label, recipe, old, new) in enumerate(variants):
            if framework != kind:
                continue
            text = render(recipe, kind)
            if old:
                assert old in text, label
                text = text.replace(old, new)
                text = text.replace("model.load_state_dict(initial_state(model))",
                                    "model.load_state_dict(initial_state(model), strict=False)")
                # BatchNorm1d's extra buffer (num_batches_tracked) is not a weight.
                text = text.replace("names = list(model.state_dict())",
                                    'names = [n for n in model.state_dict() if "num_b" not in n]')
                text = text.replace("for w in model.state_dict().values()]",
                                    'for n, w in model.state_dict().items() if "num_b" not in n]')
            scripts[f"v{index}"], golds[f"v{index}"] = text, (label, recipe.final_weights)
        weights, _ = run(scripts, kind)
        for key, (label, gold) in golds.items():
            print(f"{kind:8s} {label:32s} {error(weights[key], gold):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--ablate", action="store_true")
    args = parser.parse_args()
    for epochs in args.epochs:
        sessions = {name: trained(config, epochs) for name, config in CONFIGS.items()}
        recipes = {name: recipe_from_session(s) for name, s in sessions.items()}
        for kind in ("keras", "pytorch"):
            weights, seconds = run({n: render(r, kind) for n, r in recipes.items()}, kind)
            worst = {n: error(weights[n], recipes[n].final_weights) for n in recipes}
            steps = sum(
                s.epoch * -(-len(s.data.x_train) // s.config.batch_size)
                for s in sessions.values()
            )
            print(f"{kind:8s} {epochs:4d} epochs ({steps} steps, {seconds:.1f} s wall): "
                  + ", ".join(f"{n} {e:.1e}" for n, e in worst.items()))
    if args.ablate:
        ablations()


if __name__ == "__main__":
    main()
