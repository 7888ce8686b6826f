"""Time-travel store: memory bound, 2^k thinning, nearest-epoch lookup, fork."""

import numpy as np
import pytest

from app.instruments.checkpoints import CheckpointStore
from app.settings import Settings


def weights_of(epoch: int) -> list[np.ndarray]:
    """Weights whose every entry is the epoch number: a gold that names its own epoch."""
    return [np.full((2, 4), float(epoch)), np.full((4,), float(epoch))]


ONE_CHECKPOINT_BYTES = (8 + 4) * 8  # 12 float64 numbers


def test_every_epoch_kept_while_memory_allows() -> None:
    store = CheckpointStore(memory_bytes=100 * ONE_CHECKPOINT_BYTES)
    for epoch in range(50):
        store.add(epoch, weights_of(epoch))
    assert store.epochs == list(range(50))
    assert store.get(17).epoch == 17
    assert float(store.get(17).weights[0][0, 0]) == 17.0


def test_memory_bound_holds_and_thinning_keeps_powers_of_two_strides() -> None:
    bound = 10 * ONE_CHECKPOINT_BYTES
    store = CheckpointStore(memory_bytes=bound)
    for epoch in range(1000):
        store.add(epoch, weights_of(epoch))
        assert store.nbytes <= bound
    # 1000 epochs in 10 slots: the stride is the smallest power of two with
    # ceil(1000 / stride) <= 10, i.e. 128 (epochs 0, 128, ..., 896: 8 checkpoints).
    assert store.stride == 128
    assert store.epochs == list(range(0, 1000, 128))


def test_get_returns_the_nearest_stored_epoch_and_its_own_weights() -> None:
    store = CheckpointStore(memory_bytes=10 * ONE_CHECKPOINT_BYTES)
    for epoch in range(1000):
        store.add(epoch, weights_of(epoch))
    checkpoint = store.get(300)  # stored: 256 and 384 -> 256 is nearer
    assert checkpoint.epoch == 256
    assert np.all(checkpoint.weights[1] == 256.0)
    assert store.get(320).epoch == 256  # a tie goes to the earlier epoch
    assert store.get(5000).epoch == 896


def test_stored_weights_are_copies() -> None:
    store = CheckpointStore(memory_bytes=10 * ONE_CHECKPOINT_BYTES)
    live = weights_of(0)
    store.add(0, live)
    live[0][0, 0] = 99.0
    got = store.get(0)
    got.weights[0][0, 0] = 77.0
    assert float(store.get(0).weights[0][0, 0]) == 0.0


def test_default_bound_comes_from_settings() -> None:
    assert CheckpointStore().memory_bytes == Settings().checkpoint_memory_bytes


def test_checkpoint_too_large_for_the_bound_is_refused() -> None:
    store = CheckpointStore(memory_bytes=ONE_CHECKPOINT_BYTES)
    with pytest.raises(ValueError, match="checkpoint_memory_bytes >= 192, got 96"):
        store.add(0, weights_of(0))


def test_fork_carries_new_config_and_old_weights() -> None:
    store = CheckpointStore(memory_bytes=100 * ONE_CHECKPOINT_BYTES)
    for epoch in range(20):
        store.add(epoch, weights_of(epoch))
    fork = store.fork(12, {"learning_rate": 0.3})
    assert fork.epoch == 12
    assert fork.config == {"learning_rate": 0.3}
    assert np.all(fork.weights[0] == 12.0)


def test_fork_from_a_late_start_thins_too() -> None:
    bound = 4 * ONE_CHECKPOINT_BYTES
    store = CheckpointStore(memory_bytes=bound)
    for epoch in range(37, 200):
        store.add(epoch, weights_of(epoch))
        assert store.nbytes <= bound
    assert all(e % store.stride == 0 for e in store.epochs)
    assert len(store) >= 1


def test_byte_count_matches_the_arrays_through_adds_replacements_and_thinning() -> None:
    store = CheckpointStore(memory_bytes=7 * ONE_CHECKPOINT_BYTES)
    for epoch in [*range(30), 4, 8]:  # 4 and 8 stored twice: replaced, not counted twice
        store.add(epoch, weights_of(epoch))
        assert store.nbytes == len(store) * ONE_CHECKPOINT_BYTES
    store.clear()
    assert store.nbytes == 0 and store.stride == 1
