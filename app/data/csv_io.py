"""User points as CSV (x1, x2, label): a validating parser, the kind it implies, the writer."""

import math
import re

import numpy as np
import numpy.typing as npt

from app.data.types import KINDS, Array, Kind, Labels
from app.settings import get_settings

HEADER = ("x1", "x2", "label")
# Plain decimal or scientific notation; float() alone would also take "1_0" or " inf".
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _row_error(line_no: int, raw: str) -> ValueError:
    """The error for a row that is not three numbers."""
    return ValueError(f"line {line_no}: expected 3 numbers x1,x2,label, got {raw!r}")


def _parse_row(line_no: int, raw: str) -> tuple[float, float, float]:
    """Three finite numbers from one line, or a ValueError naming the line."""
    cells = [cell.strip() for cell in raw.split(",")]
    if len(cells) != 3:
        raise _row_error(line_no, raw)
    values: list[float] = []
    for column, cell in zip(HEADER, cells, strict=True):
        if not _NUMBER.fullmatch(cell):
            try:
                value = float(cell)
            except ValueError:
                raise _row_error(line_no, raw) from None
            if not math.isfinite(value):
                raise ValueError(f"line {line_no}: {column} is {cell!r}; values must be finite")
            raise _row_error(line_no, raw)
        value = float(cell)
        if not math.isfinite(value):  # digits so long they overflow, like 1e999
            raise ValueError(f"line {line_no}: {column} is {cell!r}; values must be finite")
        values.append(value)
    return values[0], values[1], values[2]


def _is_header(raw: str) -> bool:
    """A first line of three cells none of which is a number, e.g. x1,x2,label."""
    cells = [cell.strip() for cell in raw.split(",")]
    return len(cells) == 3 and not any(_NUMBER.fullmatch(cell) for cell in cells)


def _is_class_index(value: float) -> bool:
    """A label usable as a class: a whole number >= 0."""
    return value >= 0 and value == math.floor(value)


def infer_kind(labels: npt.ArrayLike) -> tuple[Kind, int]:
    """(kind, n_classes) from labels: whole numbers >= 0 are classes, anything else regression.

    Binary when every label is 0 or 1; multiclass with max + 1 classes otherwise.
    """
    values = np.asarray(labels, dtype=np.float64).reshape(-1)
    if len(values) == 0:
        raise ValueError("labels are empty; cannot infer the kind of problem")
    if not np.all(np.isfinite(values)):
        raise ValueError("labels must be finite, got NaN or inf")
    if np.all((values >= 0) & (values == np.floor(values))):
        top = int(values.max())
        return ("binary", 2) if top <= 1 else ("multiclass", top + 1)
    return "regression", 0


def parse_csv(
    text: str, max_rows: int | None = None, kind: Kind | None = None
) -> tuple[Array, Labels]:
    """Points (n, 2) and labels (n,) from CSV text with rows x1,x2,label.

    An optional header line; blank lines ignored. Labels come back as int64 class indices
    when every label is a whole number >= 0 (see infer_kind), else float64. Passing a
    classification `kind` demands class labels and names the first line that is not one;
    kind="regression" keeps whole-number targets as floats.
    Every error is a ValueError naming the line (1-based, blank lines counted).
    """
    if kind not in (None, *KINDS):
        raise ValueError(f"kind={kind!r} is unknown; expected one of {', '.join(KINDS)}")
    if max_rows is None:
        max_rows = get_settings().max_samples
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows} must be at least 1")
    rows: list[tuple[float, float, float]] = []
    seen_content = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if not seen_content:
            seen_content = True
            if _is_header(raw):
                continue
        if len(rows) == max_rows:
            raise ValueError(
                f"line {line_no}: too many rows; the limit is max_rows={max_rows}"
            )
        row = _parse_row(line_no, raw)
        if kind in ("binary", "multiclass") and not _is_class_index(row[2]):
            raise ValueError(
                f"line {line_no}: label {row[2]!r} is not a class index (0, 1, 2, ...)"
                f" as {kind} classification needs"
            )
        if kind == "binary" and row[2] > 1:
            raise ValueError(f"line {line_no}: label {row[2]!r} is not 0 or 1 as binary needs")
        rows.append(row)
    if not rows:
        raise ValueError("the CSV has no data rows; expected lines x1,x2,label")
    table = np.array(rows, dtype=np.float64)
    points = table[:, :2].copy()
    if kind == "regression" or infer_kind(table[:, 2])[0] == "regression":
        return points, table[:, 2].copy()
    return points, table[:, 2].astype(np.int64)


def to_csv(points: Array, labels: Labels) -> str:
    """CSV text with a header, one x1,x2,label row per point; parse_csv reads it back exactly."""
    points = np.asarray(points, dtype=np.float64)
    column = np.asarray(labels).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 2 or len(column) != len(points):
        raise ValueError(
            f"expected points (n, 2) and labels (n,), got {points.shape} and {np.shape(labels)}"
        )
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(column))):
        raise ValueError("points and labels must be finite to be written, got NaN or inf")
    # repr of a Python float is the shortest text that reads back to the same double.
    lines = [",".join(HEADER)]
    lines += [
        f"{float(x1)!r},{float(x2)!r},{label!r}"
        for (x1, x2), label in zip(points.tolist(), column.tolist(), strict=True)
    ]
    return "\n".join(lines) + "\n"
