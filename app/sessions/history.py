"""Per-epoch losses, metrics and gradient norms in a growable float64 table (no Python floats)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from app.sessions.frames import EPOCH_COLUMNS, epoch_columns

Array = npt.NDArray[np.float64]


class History:
    """Row e - 1 holds epoch e's EPOCH_COLUMNS, then grad_norm_0 .. grad_norm_{n-1}.

    grad_norm_j is Dense layer j's gradient norm at the epoch's last step (j counts Dense
    layers, hidden then output, as the frame header's `layers[j]`).
    """

    def __init__(self, norm_count: int = 0) -> None:
        self.columns = epoch_columns(norm_count)
        self._table: Array = np.empty((64, len(self.columns)))
        self._length = 0

    def __len__(self) -> int:
        return self._length

    @property
    def norm_count(self) -> int:
        """How many gradient-norm columns follow the losses and metrics."""
        return len(self.columns) - len(EPOCH_COLUMNS)

    def append(self, row: Sequence[float]) -> None:
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
            for i, name in enumerate(self.columns)
        }

    @classmethod
    def from_columns(
        cls, columns: dict[str, list[float | None]], norm_count: int | None = None
    ) -> History:
        """The inverse of to_columns (null back to NaN).

        `norm_count` None takes the gradient-norm columns present; a number expects exactly
        those (a history without any, from before they existed, gets NaN norms).
        """
        if norm_count is None:
            norm_count = len(set(columns) - set(EPOCH_COLUMNS))
        history = cls(norm_count)
        allowed = set(history.columns)
        names = list(EPOCH_COLUMNS) if set(columns) == set(EPOCH_COLUMNS) else history.columns
        if set(columns) != set(names) or not set(names) <= allowed:
            raise ValueError(
                f"history has columns {', '.join(sorted(columns))}; expected "
                f"{', '.join(history.columns)}"
            )
        lengths = {len(columns[name]) for name in names}
        if len(lengths) != 1:
            raise ValueError(f"history columns differ in length: {sorted(lengths)}")
        n = lengths.pop()
        table = np.full((max(n, 64), len(history.columns)), np.nan)
        for i, name in enumerate(history.columns):
            if name in columns:
                table[:n, i] = [np.nan if v is None else v for v in columns[name]]
        history._table, history._length = table, n
        return history
