"""Time travel: a memory-bounded store of past epochs' full states, thinned to every 2^k-th epoch.

A live session records itself (`CheckpointStore.record`, called by TrainingSession just before
it trains an epoch): the state at that epoch, everything the next epoch depends on (weights,
optimizer slots and iterations, every RNG state, early stopping, the config in force), so a
checkpoint restores a session that continues bit-identically, even when settings changed
mid-run. The store keeps every epoch that is a multiple of `stride` (1 at first). When a new
checkpoint would exceed the memory bound, `stride` doubles and the epochs that are no longer
multiples are dropped, so an old run keeps evenly spaced checkpoints over its whole history.

Persistence (docs/protocol.md "Time travel"): `encode_checkpoint`/`decode_checkpoint` turn one
checkpoint into bytes and back (no pickle: a JSON header and float64 little-endian arrays);
`CheckpointStore.changes()` gives the checkpoints added and the epochs dropped since its last
call, `CheckpointStore.load()` rebuilds a store from stored rows, and `merge_changes` folds two
consecutive change sets into one (a writer that coalesces checkpoints).
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from app.sessions.config import SessionConfig
from app.settings import get_settings

if TYPE_CHECKING:
    from app.sessions.session import TrainingSession

Array = npt.NDArray[np.float64]
ARRAY_OVERHEAD = 112  # bytes of a small numpy array's object, counted with its data
RNG_BYTES = 64  # one generator's state (two 128-bit integers and two small ones)
MAGIC = b"NNTT"  # a checkpoint's bytes start with this, then VERSION
VERSION = 1
_HEADER = struct.Struct("<4sBI")  # magic, version, header length


@dataclass(frozen=True)
class Checkpoint:
    """The state of a session at `epoch`, as it was when the next epoch started.

    A checkpoint made by `add(epoch, weights)` holds weights only (`config` None): enough to
    show the network, not to continue it.
    """

    epoch: int
    weights: list[Array]
    iterations: int = 0
    optimizer: dict[str, dict[str, Array]] = field(default_factory=dict)
    rng: dict[str, dict[str, Any]] = field(default_factory=dict)
    best_test_loss: float = math.inf
    wait: int = 0
    config: SessionConfig | None = None
    config_bytes: int = 0  # the config's JSON length (it is stored with every encoded row)

    @cached_property
    def nbytes(self) -> int:
        """Bytes the checkpoint stands for: its arrays, RNG states and config."""
        arrays = [*self.weights, *(a for slots in self.optimizer.values() for a in slots.values())]
        extra = sum(ARRAY_OVERHEAD for _ in arrays) if self.config is not None else 0
        return (
            sum(int(a.nbytes) for a in arrays) + extra + RNG_BYTES * len(self.rng)
            + self.config_bytes
        )

    @property
    def complete(self) -> bool:
        """Whether it holds the full state (a session can continue from it)."""
        return self.config is not None


@dataclass(frozen=True)
class Fork:
    """A new session forked from epoch `epoch`: a changed config and that epoch's weights."""

    config: dict[str, Any]
    epoch: int
    weights: list[Array]


def generators(session: TrainingSession) -> dict[str, np.random.Generator]:
    """Every generator whose position matters for what comes next (as the export has them)."""
    model = session.model
    return {
        "model.init": model.init_rng,
        "model.order": model.order_rng,
        "model.noise": model.noise_rng,
        "augment": session.augment_rng,
    }


def capture(session: TrainingSession, config_bytes: int = 0) -> Checkpoint:
    """The full state of `session` now (copies)."""
    model = session.model
    optimizer = model.optimizer
    return Checkpoint(
        epoch=session.epoch,
        weights=model.get_weights(),
        iterations=int(optimizer.iterations),
        optimizer={
            key: {slot: np.array(value, dtype=np.float64) for slot, value in slots.items()}
            for key, slots in optimizer.state.items()
        },
        rng={name: dict(gen.bit_generator.state) for name, gen in generators(session).items()},
        best_test_loss=float(session.best_test_loss),
        wait=int(session.wait),
        config=session.config,
        config_bytes=config_bytes,
    )


# ---- bytes ------------------------------------------------------------------------------------


def _config_json(config: SessionConfig) -> str:
    return json.dumps(config.model_dump(), allow_nan=False, separators=(",", ":"))


def encode_checkpoint(checkpoint: Checkpoint, config_json: str | None = None) -> bytes:
    """A complete checkpoint as bytes: MAGIC, version (u8), header length (u32 LE), the
    header JSON (utf-8), then every array as float64 little-endian (weights in Keras order,
    then the optimizer slots in the header's order). `config_json` is the config's JSON
    when the caller has it already."""
    if checkpoint.config is None:
        raise ValueError(f"checkpoint of epoch {checkpoint.epoch} holds weights only")
    slots = [
        (key, slot, value)
        for key, named in checkpoint.optimizer.items() for slot, value in named.items()
    ]
    best = checkpoint.best_test_loss
    header = {
        "epoch": checkpoint.epoch,
        "weights": [list(w.shape) for w in checkpoint.weights],
        "optimizer": {
            "iterations": checkpoint.iterations,
            "slots": [[key, slot, list(value.shape)] for key, slot, value in slots],
        },
        "rng": checkpoint.rng,
        "early_stopping": {"best": best if math.isfinite(best) else None,
                           "wait": checkpoint.wait},
    }
    config = config_json if config_json is not None else _config_json(checkpoint.config)
    text = json.dumps(header, allow_nan=False, separators=(",", ":"))
    head = ('{"config":' + config + "," + text[1:]).encode()
    blob = b"".join(
        np.ascontiguousarray(a, dtype="<f8").tobytes()
        for a in [*checkpoint.weights, *(value for _, _, value in slots)]
    )
    return _HEADER.pack(MAGIC, VERSION, len(head)) + head + blob


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1_000_000 for n in value
    ):
        raise ValueError(f"{where} must be a list of sizes, got {str(value)[:60]}")
    return tuple(value)


def decode_checkpoint(
    data: bytes, configs: dict[str, SessionConfig] | None = None
) -> Checkpoint:
    """The checkpoint `encode_checkpoint` wrote; ValueError naming what is wrong otherwise.

    `configs` caches validated configs by their JSON (rows of one run share a few configs).
    """
    if len(data) < _HEADER.size:
        raise ValueError(f"a checkpoint is at least {_HEADER.size} bytes, got {len(data)}")
    magic, version, length = _HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"not a time-travel checkpoint (magic {magic!r}, version {version})")
    end = _HEADER.size + length
    if end > len(data):
        raise ValueError(f"checkpoint header of {length} bytes overruns its {len(data)} bytes")
    header = json.loads(data[_HEADER.size:end])
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict):
        raise ValueError("checkpoint header must be an object with a config")
    # The config's compact JSON as encode_checkpoint wrote it (json keeps the key order).
    config_key = json.dumps(header["config"], allow_nan=False, separators=(",", ":"))
    cache = configs if configs is not None else {}
    config = cache.get(config_key)
    if config is None:
        config = cache[config_key] = SessionConfig.model_validate(header["config"])
    shapes = [_shape(s, "weights") for s in header["weights"]]
    slots = [(str(k), str(s), _shape(shape, "optimizer.slots")) for k, s, shape in
             header["optimizer"]["slots"]]
    sizes = [math.prod(s) for s in [*shapes, *(shape for _, _, shape in slots)]]
    if end + 8 * sum(sizes) != len(data):
        raise ValueError(
            f"checkpoint arrays need {8 * sum(sizes)} bytes after the header, "
            f"got {len(data) - end}"
        )
    arrays: list[Array] = []
    offset = end
    for shape, size in zip([*shapes, *(s for _, _, s in slots)], sizes, strict=True):
        values = np.frombuffer(data, dtype="<f8", count=size, offset=offset)
        arrays.append(values.astype(np.float64).reshape(shape))
        offset += 8 * size
    optimizer: dict[str, dict[str, Array]] = {}
    for (key, slot, _), array in zip(slots, arrays[len(shapes):], strict=True):
        optimizer.setdefault(key, {})[slot] = array
    stopping = header["early_stopping"]
    best = stopping["best"]
    return Checkpoint(
        epoch=int(header["epoch"]),
        weights=arrays[: len(shapes)],
        iterations=int(header["optimizer"]["iterations"]),
        optimizer=optimizer,
        rng={str(k): dict(v) for k, v in header["rng"].items()},
        best_test_loss=math.inf if best is None else float(best),
        wait=int(stopping["wait"]),
        config=config,
        config_bytes=len(config_key),
    )


Changes = tuple[list[tuple[int, bytes]], list[int]]


def merge_changes(older: Changes, newer: Changes) -> Changes:
    """Two consecutive `changes()` results as one: what a writer that coalesces them stores.

    An epoch re-added after a drop (a reset) is an upsert; one dropped after it was added is
    never written.
    """
    added = {epoch: data for epoch, data in older[0]}
    dropped = set(older[1])
    for epoch in newer[1]:
        added.pop(epoch, None)
        dropped.add(epoch)
    for epoch, data in newer[0]:
        added[epoch] = data
        dropped.discard(epoch)
    return sorted(added.items()), sorted(dropped)


# ---- the store ----------------------------------------------------------------------------------


@dataclass
class CheckpointStore:
    """Past epochs' states within `memory_bytes` (default Settings.checkpoint_memory_bytes)."""

    memory_bytes: int = field(default_factory=lambda: get_settings().checkpoint_memory_bytes)
    stride: int = 1
    _checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    # Kept as a running total: summing every checkpoint on each add made a replay O(epochs^2).
    _nbytes: int = 0
    # Change tracking for persistence: a serial per stored checkpoint, and what `changes()`
    # reported last (epoch -> serial; -1 for a loaded row that thinning dropped at once).
    _serial: int = 0
    _serials: dict[int, int] = field(default_factory=dict)
    _reported: dict[int, int] = field(default_factory=dict)
    # Epochs put or dropped since the last `changes()`: only those can differ from _reported,
    # so a call costs O(changes), not O(kept checkpoints) (it runs at every database checkpoint).
    _dirty: set[int] = field(default_factory=set)
    # The JSON of the configs in use (few per run; the frozen config objects are shared).
    _configs: list[tuple[SessionConfig, str]] = field(default_factory=list)

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

    def __contains__(self, epoch: object) -> bool:
        return epoch in self._checkpoints

    # ---- recording -----------------------------------------------------------------------

    def record(self, session: TrainingSession) -> None:
        """Keep `session`'s state at its epoch (TrainingSession calls this before each epoch,
        so the config kept is the one the next epoch trains with). Cheap when thinned away."""
        if session.epoch % self.stride != 0:
            return
        config = session.config
        text = self._config_text(config)
        with contextlib.suppress(ValueError):  # larger than half the bound: not kept, no crash
            self.put(capture(session, len(text)))

    def _config_text(self, config: SessionConfig) -> str:
        for known, text in self._configs:
            if known is config:
                return text
        text = _config_json(config)
        self._configs = [*self._configs[-7:], (config, text)]
        return text

    def add(self, epoch: int, weights: list[Array]) -> bool:
        """Store a copy of `weights` for `epoch` (weights only); False when thinned away."""
        return self.put(Checkpoint(epoch, [np.array(w, dtype=np.float64) for w in weights]))

    def put(self, checkpoint: Checkpoint) -> bool:
        """Store `checkpoint` (replacing one of the same epoch); False when thinning skips it."""
        epoch = checkpoint.epoch
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        size = checkpoint.nbytes
        # Two checkpoints must fit, or thinning could never make room for a newer one.
        if 2 * size > self.memory_bytes:
            raise ValueError(
                f"a checkpoint of {size} bytes needs checkpoint_memory_bytes >= "
                f"{2 * size}, got {self.memory_bytes}"
            )
        self._drop(epoch)
        while True:
            if epoch % self.stride != 0:
                return False
            if self._nbytes + size <= self.memory_bytes:
                self._checkpoints[epoch] = checkpoint
                self._nbytes += size
                self._serial += 1
                self._serials[epoch] = self._serial
                self._dirty.add(epoch)
                return True
            self._thin()

    def _drop(self, epoch: int) -> None:
        stored = self._checkpoints.pop(epoch, None)
        if stored is not None:
            self._nbytes -= stored.nbytes
            del self._serials[epoch]
            self._dirty.add(epoch)

    def _thin(self) -> None:
        """Double the stride and drop the epochs that are no longer multiples of it."""
        self.stride *= 2
        for epoch in [e for e in self._checkpoints if e % self.stride != 0]:
            self._drop(epoch)

    def get(self, epoch: int) -> Checkpoint:
        """The stored checkpoint nearest to `epoch` (the earlier one on a tie), with copies of
        its arrays."""
        stored = self._checkpoints[self.nearest(epoch)]
        return Checkpoint(
            stored.epoch, [w.copy() for w in stored.weights], stored.iterations,
            {k: {s: v.copy() for s, v in slots.items()} for k, slots in stored.optimizer.items()},
            {name: dict(state) for name, state in stored.rng.items()},
            stored.best_test_loss, stored.wait, stored.config, stored.config_bytes,
        )

    def nearest(self, epoch: int) -> int:
        """The stored epoch nearest to `epoch` (the earlier one on a tie)."""
        if not self._checkpoints:
            raise ValueError(f"no checkpoint stored yet (asked for epoch {epoch})")
        return min(self._checkpoints, key=lambda e: (abs(e - epoch), e))

    def fork(self, epoch: int, config: dict[str, Any]) -> Fork:
        """A new config starting from the weights stored nearest to `epoch`."""
        checkpoint = self.get(epoch)
        return Fork(dict(config), checkpoint.epoch, checkpoint.weights)

    def clear(self) -> None:
        """Forget every checkpoint (a reset or an architecture change): changes() reports
        them dropped."""
        self._dirty.update(self._checkpoints)
        self._checkpoints.clear()
        self._serials.clear()
        self._nbytes = 0
        self.stride = 1

    # ---- persistence ---------------------------------------------------------------------

    def changes(self) -> Changes:
        """(added, dropped) since the last call: added = [(epoch, encode_checkpoint bytes)]
        (an upsert: a reset re-adds epoch 0), dropped = epochs to delete; never both for one
        epoch. Only complete checkpoints are reported (a stored epoch replaced by a weights-only
        one is reported dropped)."""
        added: list[tuple[int, bytes]] = []
        dropped: list[int] = []
        for epoch in sorted(self._dirty):
            checkpoint = self._checkpoints.get(epoch)
            if checkpoint is None or checkpoint.config is None:  # weights only: never stored
                if self._reported.pop(epoch, None) is not None:
                    dropped.append(epoch)  # a stored row of it is stale now
            elif self._reported.get(epoch) != self._serials[epoch]:
                added.append((epoch, encode_checkpoint(
                    checkpoint, self._config_text(checkpoint.config))))
                self._reported[epoch] = self._serials[epoch]
        self._dirty.clear()
        return added, dropped

    def load(self, rows: Iterable[tuple[int, bytes]]) -> None:
        """Replace the store's content by stored rows (as `changes()` gave them): they count
        as reported; any that no longer fit, or cannot be read (corrupt, or a config today's
        limits refuse), are reported dropped by the next `changes()`."""
        self.clear()
        configs: dict[str, SessionConfig] = {}
        checkpoints: list[Checkpoint] = []
        unreadable: list[int] = []
        for epoch, data in rows:
            try:
                checkpoints.append(decode_checkpoint(data, configs))
            except ValueError:  # corrupt, or a config today's limits refuse: dropped, not fatal
                unreadable.append(epoch)
        for checkpoint in sorted(checkpoints, key=lambda c: c.epoch):
            with contextlib.suppress(ValueError):  # larger than today's whole bound
                self.put(checkpoint)
        self._reported = {epoch: -1 for epoch in unreadable}
        self._reported.update({cp.epoch: -1 for cp in checkpoints})
        self._reported.update(self._serials)
        self._dirty = set(self._reported)

    def items(self) -> list[tuple[int, Checkpoint]]:
        """(epoch, checkpoint) ascending; the stored objects themselves (do not change them)."""
        return sorted(self._checkpoints.items())


def attach(session: TrainingSession, factory: Callable[[], CheckpointStore] = CheckpointStore,
           ) -> CheckpointStore:
    """Make `session` record its time travel (a live session in a worker); returns the store."""
    if session.timetravel is None:
        session.timetravel = factory()
    return session.timetravel
