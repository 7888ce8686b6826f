"""Shared helpers of the renderers: numbers and arrays as Python source, wrapped lines, text.

Floats are written with `repr`, the shortest text that reads back as the same float64, so an
embedded array is bit-identical to the session's. Non-finite values (a diverged run's weights)
are written as `np.nan` / `np.inf`, so the scripts import numpy as `np`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from app.codegen.recipe import Recipe

WIDTH = 99  # the generated scripts keep to ruff's line length of 100


def number(value: float) -> str:
    """A float as Python source that reads back bit-identically."""
    value = float(value)
    if math.isnan(value):
        return "np.nan"
    if math.isinf(value):
        return "np.inf" if value > 0 else "-np.inf"
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    return repr(value)


def label(value: float) -> str:
    """A label: an integer when it is one (class labels), else a float."""
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return number(value)


def wrap_items(items: Sequence[str], indent: str, width: int = WIDTH) -> list[str]:
    """`items` joined by ", " with a trailing comma, as few lines of at most `width` as fit."""
    lines: list[str] = []
    line = ""
    for item in items:
        piece = f"{item},"
        if line and len(indent) + len(line) + 1 + len(piece) > width:
            lines.append(indent + line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    if line:
        lines.append(indent + line)
    return lines


def nested(array: npt.NDArray[np.float64], indent: str, taken: int = 0) -> str:
    """A 1-D or 2-D array as a bracketed literal (no `np.array(`), rows one per line; `taken`
    characters of the first line are used before it (e.g. by `np.array(`)."""
    if array.ndim == 0:
        return number(float(array))
    if array.ndim == 1:
        flat = [number(v) for v in array]
        one_line = "[" + ", ".join(flat) + "]"
        if len(indent) + taken + len(one_line) + 2 <= WIDTH:
            return one_line
        return "[\n" + "\n".join(wrap_items(flat, indent + "    ")) + "\n" + indent + "]"
    rows = [nested(row, indent + "    ") for row in array]
    if all("\n" not in row for row in rows):
        body = wrap_items(rows, indent + "    ")
    else:
        body = [f"{indent}    {row}," for row in rows]
    return "[\n" + "\n".join(body) + "\n" + indent + "]"


def array_literal(array: npt.NDArray[np.float64], indent: str = "") -> str:
    """`np.array([...])` reading back as exactly `array` (float64, same shape)."""
    if array.size == 0:
        return f"np.zeros({tuple(array.shape)!r})"
    values = np.asarray(array, dtype=np.float64)
    return f"np.array({nested(values, indent, len('np.array('))})"


def points_literal(points: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> str:
    """Rows [x1, x2, label] as `np.array([...])`, several rows per line."""
    rows = [f"[{number(p[0])}, {number(p[1])}, {label(y)}]" for p, y in zip(
        points, labels, strict=True)]
    return "np.array([\n" + "\n".join(wrap_items(rows, "    ")) + "\n], dtype=np.float64)"


def weights_literal(name: str, weights: Iterable[npt.NDArray[np.float64]],
                    names: Sequence[str]) -> str:
    """`NAME = [np.array(...), ...]` with each array's name and shape in a comment."""
    parts = [f"{name} = ["]
    for array, weight_name in zip(weights, names, strict=True):
        parts.append(f"    # {weight_name} {tuple(array.shape)}")
        parts.append(f"    {array_literal(array, '    ')},")
    parts.append("]")
    return "\n".join(parts)


def comment_block(text: str, indent: str = "", width: int = WIDTH) -> str:
    """`text` as `# ` comment lines wrapped at `width`."""
    lines = textwrap.wrap(text, width - len(indent) - 2, break_on_hyphens=False)
    return "\n".join(f"{indent}# {line}" for line in lines)


def paragraph(text: str, width: int = WIDTH - 1) -> str:
    """`text` wrapped at `width` (for docstrings)."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False))


def file_name(recipe: Recipe, framework: str) -> str:
    """The download's name: e.g. circle_2-4-2-1_numpy.py."""
    shape = "-".join(str(n) for n in [len(recipe.features), *(la.units for la in recipe.layers)])
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in recipe.dataset)
    return f"{stem}_{shape}_{framework}.py"


def epoch_code(recipe: Recipe, inputs: str) -> tuple[str, str, str, str]:
    """The pieces of a script's epoch loop that every framework writes alike: the lines before
    the loop (the best test loss, the fixed training arrays), an epoch's augmented data,
    its evaluation and progress print (every epoch when early stopping needs the test loss),
    and early stopping. `inputs`: the network's inputs from `points`."""
    early = ""
    if recipe.early_stopping_patience is not None:
        early = '''
        # Early stopping as the playground's: stop once the test loss has not improved on its
        # best for PATIENCE epochs in a row.
        if test_loss < best_test_loss:
            best_test_loss, wait = test_loss, 0
        else:
            wait += 1
            if wait >= PATIENCE:
                print(f"early stopping after epoch {epoch + 1}")
                break
'''
    report_every = max(1, recipe.epochs // 10)
    always = recipe.early_stopping_patience is not None
    show = ('print(f"epoch {epoch + 1}: train loss {train_loss:.6f}, '
            'test loss {test_loss:.6f}")\n')
    if report_every == 1:
        evaluate_line = "        train_loss, test_loss = evaluate(model)\n        " + show
    elif always:
        evaluate_line = (
            "        train_loss, test_loss = evaluate(model)\n"
            f"        if (epoch + 1) % {report_every} == 0:\n            " + show
        )
    else:
        evaluate_line = (
            f"        if (epoch + 1) % {report_every} == 0:\n"
            "            train_loss, test_loss = evaluate(model)\n            " + show
        )
    best = "    best_test_loss, wait = np.inf, 0\n" if always else ""
    if recipe.augmentation is None:
        best += "    x_train, y_train = X_TRAIN, Y_TRAIN\n"
        epoch_data = ""
    else:
        epoch_data = (
            "        points, labels = augment(TRAIN_POINTS[:, :2], TRAIN_POINTS[:, 2])\n"
            f"        x_train, y_train = {inputs}, targets(labels)\n"
        )
    return best, epoch_data, evaluate_line, early
