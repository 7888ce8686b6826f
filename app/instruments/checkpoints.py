"""Time travel: a memory-bounded store of past epochs' weights, thinned to every 2^k-th epoch.

The store keeps the weights of every epoch that is a multiple of `stride` (1 at first). When a
new checkpoint would exceed the memory bound, `stride` doubles and the epochs that are no longer
multiples are dropped, so an old run keeps evenly spaced checkpoints over its whole history
instead of only its most recent epochs.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from app.settings import get_settings

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Checkpoint:
    """The weights (Keras order) of one stored epoch."""

    epoch: int
    weights: list[Array]

    @property
    def nbytes(self) -> int:
        """Bytes held by the weight arrays."""
        return sum(int(w.nbytes) for w in self.weights)


@dataclass(frozen=True)
class Fork:
    """A new session forked from epoch `epoch`: a changed config and that epoch's weights."""

    config: dict[str, Any]
    epoch: int
    weights: list[Array]


@dataclass
class CheckpointStore:
    """Past epochs' weights within `memory_bytes` (default Settings.checkpoint_memory_bytes)."""

    memory_bytes: int = field(default_factory=lambda: get_settings().checkpoint_memory_bytes)
    stride: int = 1
    _checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    # Kept as a running total: summing every checkpoint on each add made a replay O(epochs^2).
    _nbytes: int = 0

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0:
            raise ValueError(
                f"checkpoint_memory_bytes must be > 0, got {self.memory_bytes}"
            )

    @property
    def epochs(self) -> list[int]:
        """Stored epochs, ascending."""
        return sorted(self._checkpoints)

    @property
    def nbytes(self) -> int:
        """Bytes held by all stored checkpoints."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._checkpoints)

    def add(self, epoch: int, weights: list[Array]) -> bool:
        """Store a copy of `weights` for `epoch`; returns False when thinning skips this epoch."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        checkpoint = Checkpoint(epoch, [np.array(w, dtype=np.float64) for w in weights])
        # Two checkpoints must fit, or thinning could never make room for a newer one.
        if 2 * checkpoint.nbytes > self.memory_bytes:
            raise ValueError(
                f"a checkpoint of {checkpoint.nbytes} bytes needs checkpoint_memory_bytes >= "
                f"{2 * checkpoint.nbytes}, got {self.memory_bytes}"
            )
        self._drop(epoch)
        size = checkpoint.nbytes
        while True:
            if epoch % self.stride != 0:
                return False
            if self._nbytes + size <= self.memory_bytes:
                self._checkpoints[epoch] = checkpoint
                self._nbytes += size
                return True
            self._thin()

    def _drop(self, epoch: int) -> None:
        stored = self._checkpoints.pop(epoch, None)
        if stored is not None:
            self._nbytes -= stored.nbytes

    def _thin(self) -> None:
        """Double the stride and drop the epochs that are no longer multiples of it."""
        self.stride *= 2
        for epoch in [e for e in self._checkpoints if e % self.stride != 0]:
            self._drop(epoch)

    def get(self, epoch: int) -> Checkpoint:
        """The stored checkpoint nearest to `epoch` (the earlier one on a tie)."""
        if not self._checkpoints:
            raise ValueError(f"no checkpoint stored yet (asked for epoch {epoch})")
        nearest = min(self._checkpoints, key=lambda e: (abs(e - epoch), e))
        stored = self._checkpoints[nearest]
        return Checkpoint(stored.epoch, [w.copy() for w in stored.weights])

    def fork(self, epoch: int, config: dict[str, Any]) -> Fork:
        """A new config starting from the weights stored nearest to `epoch`."""
        checkpoint = self.get(epoch)
        return Fork(dict(config), checkpoint.epoch, checkpoint.weights)

    def clear(self) -> None:
        """Forget every checkpoint (a reset or an architecture change)."""
        self._checkpoints.clear()
        self._nbytes = 0
        self.stride = 1
