"""Time-travel checkpoints through the database (H1's Storage, SQLite and real PostgreSQL).

Gold: the recording session itself. Its `changes()` go into SessionCheckpoints as the worker
sends them (a reset in between: drops and an upsert of epoch 0), the stored rows are loaded into
a fresh store, and a fork from every kept epoch equals the original's weights at that epoch and
continues as the original did.
"""

from typing import Any

from fastapi.testclient import TestClient

from app.instruments.checkpoints import CheckpointStore, attach
from app.instruments.timetravel import replay
from app.main import create_app
from app.sessions.config import SessionConfig
from app.sessions.export import SessionExport, import_session
from app.sessions.frames import decode_frame
from app.sessions.session import TrainingSession
from app.storage.store import SessionCheckpoint, Storage
from tests.conftest import make_settings

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


def test_time_travel_survives_a_server_restart(tmp_path: Any) -> None:
    """An app trains a session 24 epochs (a learning rate PATCHed at 12) and stops; a second
    app on the same database restores it: its time-travel stops are the recorded ones and each
    frame's weights hash is the first run's own at that epoch (gold: the step replies)."""
    settings = make_settings(data_dir=tmp_path, checkpoint_seconds=0.2)
    hashes: dict[int, str] = {}
    with TestClient(create_app(settings)) as first:
        created = first.post("/api/sessions", json=CONFIG.model_dump()).json()
        sid, auth = created["id"], {"Authorization": f"Bearer {created['owner_token']}"}
        hashes[0] = created["weights_hash"]
        for epoch in range(1, 25):
            if epoch == 13:
                first.patch(f"/api/sessions/{sid}", json={"learning_rate": 0.05}, headers=auth)
            reply = first.post(f"/api/sessions/{sid}/commands", json={"type": "step", "n": 1},
                               headers=auth)
            hashes[epoch] = reply.json()["weights_hash"]
    with TestClient(create_app(settings)) as second:
        summary = second.post(f"/api/sessions/{sid}/timetravel", headers=auth)
        assert summary.status_code == 201, summary.text
        assert summary.json()["epochs"] == list(range(25))
        for epoch in (0, 5, 12, 13, 23):
            header, _ = decode_frame(second.get(f"/api/sessions/{sid}/timetravel/{epoch}").content)
            assert header["weights_hash"] == hashes[epoch], epoch
