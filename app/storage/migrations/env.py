"""Alembic environment: runs on the connection app/storage/database.py hands it (no alembic.ini).

`alembic -x url=...` from a shell is not supported on purpose: the server migrates on start.
"""

from alembic import context
from sqlalchemy.engine import Connection

from app.storage.tables import metadata

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
)
with context.begin_transaction():
    context.run_migrations()
