"""The database: sessions that survive restarts, saved runs and classes (issue 10).

app.state.storage is a Storage (store.py); its tables are in tables.py, migrated on start by
Alembic (migrations/); the checkpoint writer thread (writer.py) stores what workers send.
"""

from app.storage.database import SchemaTooNew
from app.storage.store import SessionCheckpoint, Storage, StoredSession

__all__ = ["SchemaTooNew", "SessionCheckpoint", "Storage", "StoredSession"]
