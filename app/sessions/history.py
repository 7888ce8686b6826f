"""Per-epoch losses and metrics in a growable float64 table (no Python float per value)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.sessions.frames import EPOCH_COLUMNS

Array = npt.NDArray[np.float64]


class History:
    """Row e - 1 holds epoch e's train_loss, test_loss, train_metric, test_metric."""

    def __init__(self) -> None:
        self._table: Array = np.empty((64, len(EPOCH_COLUMNS)))
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def append(self, row: tuple[float, float, float, float]) -> None:
        """Add the next epoch's row, doubling the table when full."""
        if self._length == len(self._table):
            self._table = np.concatenate([self._table, np.empty_like(self._table)])
        self._table[self._length] = row
        self._length += 1

    def rows(self, first_epoch: int = 1) -> Array:
        """Rows of epochs first_epoch .. len (a copy)."""
        return self._table[max(first_epoch, 1) - 1:self._length].copy()

    def last(self) -> Array | None:
        """The latest row, or None before the first epoch."""
        return self._table[self._length - 1] if self._length else None

    def to_columns(self) -> dict[str, list[float | None]]:
        """JSON-ready columns; non-finite values become null."""
        table = self._table[:self._length]
        return {
            name: [v if np.isfinite(v) else None for v in table[:, i].tolist()]
            for i, name in enumerate(EPOCH_COLUMNS)
        }

    @classmethod
    def from_columns(cls, columns: dict[str, list[float | None]]) -> History:
        """The inverse of to_columns (null back to NaN)."""
        lengths = {len(columns[name]) for name in EPOCH_COLUMNS}
        if len(lengths) != 1:
            raise ValueError(f"history columns differ in length: {sorted(lengths)}")
        history = cls()
        n = lengths.pop()
        table = np.full((max(n, 64), len(EPOCH_COLUMNS)), np.nan)
        for i, name in enumerate(EPOCH_COLUMNS):
            table[:n, i] = [np.nan if v is None else v for v in columns[name]]
        history._table, history._length = table, n
        return history
