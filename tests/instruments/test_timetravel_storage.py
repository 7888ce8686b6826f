"""Time-travel checkpoints through the database (H1's Storage, SQLite and real PostgreSQL).

Gold: the recording session itself. Its `changes()` go into SessionCheckpoints as the worker
sends them (a reset in between: drops and an upsert of epoch 0), the stored rows are loaded into
a fresh store, and a fork from every kept epoch equals the original's weights at that epoch and
continues as the original did.
"""

from app.instruments.checkpoints import CheckpointStore, attach
from app.instruments.timetravel import replay
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, import_session
from app.sessions.session import TrainingSession
from app.storage.store import SessionCheckpoint, Storage

CONFIG = SessionConfig.model_validate({
    "dataset": "xor", "n_samples": 60, "grid_resolution": 6, "optimizer": "adam",
    "learning_rate": 0.02, "augmentation": True,
})


def checkpoint(session: TrainingSession, store: CheckpointStore, reset: bool) -> SessionCheckpoint:
    added, dropped = store.changes()
    return SessionCheckpoint(
        session_id="tt", owner_hash="o" * 64, address="127.0.0.1", epoch=session.epoch,
        status=session.status, history_id=session.history_id, snapshot=b"{}",
        history_columns=list(session.history.columns), first_epoch=1, rows=b"",
        reset_history=reset, timetravel=added, timetravel_dropped=dropped,
    )


def test_stored_checkpoints_restore_the_recorded_states(storage: Storage) -> None:
    session = TrainingSession(CONFIG, "tt")
    store = attach(session, lambda: CheckpointStore(memory_bytes=12 * 2_000))
    for _ in range(7):
        session.train_one_epoch()
    storage.save_checkpoint(checkpoint(session, store, False))
    session.reset(same_start=True)  # everything dropped; the same run again from epoch 0
    hashes: dict[int, str] = {0: session.weights_hash()}
    for _ in range(40):  # thinned meanwhile (a few checkpoints fit): drops reach the database
        session.train_one_epoch()
        hashes[session.epoch] = session.weights_hash()
        if session.epoch % 9 == 0:
            storage.save_checkpoint(checkpoint(session, store, False))
    storage.save_checkpoint(checkpoint(session, store, False))

    assert store.stride > 1 and len(store) >= 3
    stored = storage.load_session("tt")
    assert stored is not None
    assert [epoch for epoch, _ in stored.timetravel] == store.epochs  # drops applied, no extras
    restored_live = TrainingSession(CONFIG, "restored")
    loaded = attach(restored_live)
    loaded.load(stored.timetravel)
    assert loaded.epochs == store.epochs and loaded.changes() == ([], [])
    restored_live.history = session.history  # as a restore has it
    restored_live.epoch = session.epoch
    view = replay(restored_live)
    for epoch in loaded.epochs[:-1]:
        fork = import_session(SessionExport.model_validate(view.fork_export(epoch, {})), "f")
        assert fork.weights_hash() == hashes[epoch]
        fork.train_one_epoch()
        assert fork.weights_hash() == hashes[epoch + 1], epoch
