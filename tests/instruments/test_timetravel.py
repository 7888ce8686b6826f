"""Time travel restores recorded full states: past epochs, frames of them, forks, persistence.

The gold is always the original run itself: its weights hash and history row after every epoch,
recorded as it trained. A fork from epoch k trained n epochs must equal the original's epochs
k+1..k+n bit for bit (same settings), also when the original changed settings mid-run.
"""

from typing import Any

import numpy as np
import pytest

from app.instruments.checkpoints import (
    CheckpointStore,
    attach,
    decode_checkpoint,
    encode_checkpoint,
    merge_changes,
)
from app.instruments.timetravel import replay
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, export_session, import_session
from app.sessions.frames import decode_frame
from app.sessions.session import TrainingSession

CONFIG = SessionConfig.model_validate({"dataset": "xor", "n_samples": 80, "grid_resolution": 10})
# Adam (slots and iterations), dropout (the noise generator) and augmentation (its own
# generator): a fork that lost any of those states would drift from the original at once.
STATEFUL = SessionConfig.model_validate({
    "dataset": "xor", "n_samples": 80, "grid_resolution": 10, "optimizer": "adam",
    "learning_rate": 0.01, "augmentation": True, "seed": 3,
    "layers": [{"units": 4, "dropout": 0.2}, {"units": 3}],
})


def trained(epochs: int, config: SessionConfig = CONFIG) -> TrainingSession:
    session = TrainingSession(config)
    for _ in range(epochs):
        session.train_one_epoch()
    return session


class Original:
    """A recorded live run and its gold: the weights hash after every epoch."""

    def __init__(self, config: SessionConfig, memory_bytes: int | None = None) -> None:
        self.session = TrainingSession(config, "live")
        store = CheckpointStore() if memory_bytes is None else CheckpointStore(memory_bytes)
        self.store = attach(self.session, lambda: store)
        self.hashes = {0: self.session.weights_hash()}

    def train(self, epochs: int) -> None:
        for _ in range(epochs):
            self.session.train_one_epoch()
            self.hashes[self.session.epoch] = self.session.weights_hash()


def fork_of(original: Original, epoch: int, changes: dict[str, Any] | None = None
            ) -> TrainingSession:
    export = replay(original.session).fork_export(epoch, changes or {})
    return import_session(SessionExport.model_validate(export), "fork")


def assert_continues_as(fork: TrainingSession, original: Original, epochs: int) -> None:
    """Fork trained `epochs` more: every epoch's weights and history row equal the original's."""
    start = fork.epoch
    gold_rows = original.session.history.rows(start + 1)
    for n in range(1, epochs + 1):
        fork.train_one_epoch()
        assert fork.weights_hash() == original.hashes[start + n], f"epoch {start + n}"
    rows = fork.history.rows(start + 1)
    assert np.array_equal(rows, gold_rows[:epochs], equal_nan=True)


def test_every_kept_epoch_holds_the_runs_exact_state() -> None:
    original = Original(STATEFUL)
    original.train(30)
    assert original.store.epochs == list(range(30))  # the live epoch 30 is not recorded yet
    for epoch in (0, 7, 29):
        checkpoint = original.store.get(epoch)
        assert checkpoint.epoch == epoch
        gold = trained(epoch, STATEFUL)  # an independent run stopped there
        assert all(np.array_equal(a, b) for a, b in
                   zip(gold.model.get_weights(), checkpoint.weights, strict=True))
        assert checkpoint.iterations == gold.model.optimizer.iterations
        assert checkpoint.rng["model.noise"] == gold.model.noise_rng.bit_generator.state
        assert checkpoint.rng["augment"] == gold.augment_rng.bit_generator.state


def test_a_fork_continues_bit_for_bit_with_its_optimizer_and_rng_states() -> None:
    original = Original(STATEFUL)
    original.train(40)
    for k in (0, 13, 40):  # 40: the live epoch itself
        fork = fork_of(original, k)
        assert fork.epoch == k and fork.weights_hash() == original.hashes[k]
        assert len(fork.history) == k
        assert_continues_as(fork, original, min(12, 40 - k) or 0)
    assert original.session.epoch == 40  # forking and scrubbing leave the live run alone


def test_a_run_changed_mid_run_scrubs_and_forks_exactly() -> None:
    """Learning rate raised and batch size changed at epoch 50, weight edited at 70: the old
    replay could not reproduce this run; restored checkpoints do, at every kept epoch."""
    original = Original(STATEFUL)
    original.train(50)
    original.session.update({"learning_rate": 0.05, "batch_size": 7})
    original.train(20)
    original.session.edit_weight(0, "bias", [1], 0.5)
    edited = original.session.weights_hash()  # epoch 71 starts from this
    original.train(20)
    views = replay(original.session)
    assert views.verified
    for epoch in views.epochs():
        header, _ = decode_frame(views.frame_at(epoch))
        gold = edited if epoch == 70 else original.hashes[epoch]
        assert header["epoch"] == epoch
        assert header["weights_hash"] == gold, f"frame of epoch {epoch}"
    assert original.store.get(30).config is not None
    assert original.store.get(30).config.learning_rate == 0.01
    assert original.store.get(50).config.learning_rate == 0.05  # in force for epoch 51
    for k, n in ((45, 5), (50, 10), (65, 5), (71, 10)):
        assert_continues_as(fork_of(original, k), original, n)
    after_edit = fork_of(original, 70)
    assert after_edit.weights_hash() == edited
    after_edit.train_one_epoch()
    assert after_edit.weights_hash() == original.hashes[71]


def test_a_fork_with_new_settings_keeps_weights_and_resets_a_changed_optimizer() -> None:
    original = Original(STATEFUL)
    original.train(10)
    fork = fork_of(original, 6, {"learning_rate": 0.1, "optimizer": "sgd"})
    assert (fork.epoch, fork.config.learning_rate, fork.config.optimizer) == (6, 0.1, "sgd")
    assert fork.weights_hash() == original.hashes[6]
    assert fork.model.optimizer.iterations == 0
    same = fork_of(original, 6, {"learning_rate": 0.1})
    assert same.model.optimizer.iterations == original.store.get(6).iterations > 0
    fork.train_one_epoch()
    assert fork.epoch == 7


def test_fork_refuses_changes_that_reshape_the_weights() -> None:
    original = Original(CONFIG)
    original.train(2)
    with pytest.raises(ValueError, match="a fork keeps the weights, so it cannot change layers"):
        replay(original.session).fork_export(1, {"layers": [{"units": 3}]})


def test_frame_at_an_epoch_shows_that_epochs_network() -> None:
    original = Original(CONFIG)
    original.train(8)
    views = replay(original.session)
    assert views.epochs() == list(range(9))  # the live epoch is a stop too
    header, arrays = decode_frame(views.frame_at(3))
    assert header["epoch"] == 3 and header["time_travel"]["epoch"] == 3
    assert header["weights_hash"] == trained(3).weights_hash()
    assert header["metrics"]["train_loss"] == trained(3).history.to_columns()["train_loss"][-1]
    assert arrays["output"].shape == (10, 10)
    assert original.session.weights_hash() == original.hashes[8]


def test_a_long_run_in_little_memory_keeps_every_2k_th_epoch_and_a_reset_clears() -> None:
    original = Original(CONFIG)
    original.train(1)
    one = original.store.get(0).nbytes
    original = Original(CONFIG, memory_bytes=6 * one)  # room for 6 checkpoints
    original.train(41)  # epochs 0..40 recorded
    store = original.store
    assert store.nbytes <= 6 * one
    assert store.stride == 8 and store.epochs == [0, 8, 16, 24, 32, 40]
    header, _ = decode_frame(replay(original.session).frame_at(13))
    assert header["epoch"] == 16 and header["weights_hash"] == original.hashes[16]
    original.session.reset()
    assert store.epochs == [] and store.stride == 1
    tiny = Original(CONFIG, memory_bytes=one)  # not even two fit: nothing kept, training goes on
    tiny.train(3)
    assert tiny.session.epoch == 3 and tiny.store.epochs == []


def test_rows_round_trip_and_changes_report_adds_and_drops() -> None:
    """Persistence: changes() gives every new row once, thinning's drops, and a store loaded
    from the rows restores the same states (a fork from it continues as the original)."""
    original = Original(STATEFUL)
    original.train(5)
    added, dropped = original.store.changes()
    assert [e for e, _ in added] == [0, 1, 2, 3, 4] and dropped == []
    assert original.store.changes() == ([], [])
    one = decode_checkpoint(added[2][1])
    stored = original.store.get(2)
    assert encode_checkpoint(one) == added[2][1]
    assert one.config == stored.config and one.rng == stored.rng
    assert one.iterations == stored.iterations
    rows = dict(added)

    original.train(20)
    more, gone = original.store.changes()
    assert [e for e, _ in more] == list(range(5, 25)) and gone == []
    rows.update(more)
    # A reset: every stored epoch is dropped, epoch 0 comes back (an upsert) once trained.
    original.session.reset()
    original.session.train_one_epoch()
    new, dropped = original.store.changes()
    assert [e for e, _ in new] == [0] and dropped == list(range(1, 25))
    merged = merge_changes((more, gone), (new, dropped))
    assert [e for e, _ in merged[0]] == [0] and merged[1] == list(range(1, 25))

    restored = import_session(SessionExport.model_validate(export_session(trained(25, STATEFUL))),
                              "restored")
    store = attach(restored)
    store.load(sorted(rows.items()))
    assert store.epochs == list(range(25)) and store.changes() == ([], [])
    gold = Original(STATEFUL)
    gold.train(40)
    fork = import_session(SessionExport.model_validate(replay(restored).fork_export(11, {})), "f")
    assert_continues_as(fork, gold, 10)
    broken = CheckpointStore()
    broken.load([(0, rows[0]), (1, b"NNTT garbage")])  # a corrupt row: dropped, not fatal
    assert broken.epochs == [0] and broken.changes() == ([], [1])
    small = CheckpointStore(memory_bytes=4 * one.nbytes)
    small.load(sorted(rows.items()))  # does not fit: thinned, and the thinned rows reported
    added, dropped = small.changes()
    assert added == [] and set(dropped) == set(range(25)) - set(small.epochs)


def test_decode_refuses_bytes_that_are_not_a_checkpoint() -> None:
    original = Original(CONFIG)
    original.train(1)
    data = original.store.changes()[0][0][1]
    for bad, message in ((b"xx", "at least"), (b"NOPE" + data[4:], "not a time-travel"),
                         (data[:-8], "arrays need")):
        with pytest.raises(ValueError, match=message):
            decode_checkpoint(bad)
