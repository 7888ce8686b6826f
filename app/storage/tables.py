"""The database schema (SQLAlchemy Core): one `metadata`, every table of issue 10.

Migrations (migrations/versions) create exactly these: 0001_initial, then 0002_class_creators
(classes.owner_hash, classes.address), then 0003_ray_directory (placements, directory_owners:
the ray backend's directory, issue 12), then 0004_directory_holdings (the directory's races
and replays, for the job budgets across replicas); a later change to a table is a new Alembic
revision, never an edit of an older one.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

# Constraint names fixed by convention, so migrations can name what they alter or drop.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A session's last checkpoint: everything its export holds but the history (in history_chunks).
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_hash", String(64), nullable=False),  # SHA-256 hex of the owner token
    Column("address", String(64), nullable=False),
    Column("class_code", String(16), nullable=True, index=True),
    Column("learner_name", String(60), nullable=True),
    # "live": in a worker, or comes back on start; "stored": evicted by idle expiry.
    Column("state", String(8), nullable=False, index=True),
    Column("epoch", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("history_id", Integer, nullable=False),
    Column("snapshot", LargeBinary, nullable=False),  # export JSON without "history", utf-8
    Column("history_columns", Text, nullable=False),  # JSON list of column names
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# The history, append-only: float64 little-endian rows, row_count x len(history_columns).
history_chunks = Table(
    "history_chunks",
    metadata,
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("first_epoch", Integer, primary_key=True),
    Column("row_count", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Time-travel checkpoints kept for a session (full state at that epoch; encoding: H3).
timetravel_checkpoints = Table(
    "timetravel_checkpoints",
    metadata,
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("epoch", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)

# Saved runs: immutable snapshots behind a share link, optionally listed in the gallery.
runs = Table(
    "runs",
    metadata,
    Column("slug", String(16), primary_key=True),
    Column("owner_hash", String(64), nullable=False, index=True),
    Column("source_session", String(32), nullable=False),
    Column("title", String(120), nullable=False),
    Column("public", Boolean, nullable=False),
    Column("dataset", String(40), nullable=False),
    Column("problem", String(20), nullable=False),
    Column("shape", String(80), nullable=False),  # e.g. "2-4-4-1"
    Column("parameters", Integer, nullable=False),
    Column("epochs", Integer, nullable=False),
    Column("optimizer", String(20), nullable=False),
    Column("train_loss", Float, nullable=True),
    Column("test_loss", Float, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("export", LargeBinary, nullable=False),  # gzip of the full export JSON
    Column("thumbnail", LargeBinary, nullable=False),  # uint8 row-major grid
    Column("thumbnail_size", Integer, nullable=False),
    Index("ix_runs_gallery", "dataset", "public", "test_loss"),
)

# Classes of the classroom: a join code, the teacher's token hash, the last pushed preset.
classes = Table(
    "classes",
    metadata,
    Column("code", String(12), primary_key=True),
    Column("teacher_hash", String(64), nullable=False, index=True),
    Column("title", String(120), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("preset", Text, nullable=True),  # JSON of the last pushed config
    # Who created it (revision 0002): the quotas max_classes_per_owner / _per_address count
    # these, so they hold across restarts. NULL owner: created without a token.
    Column("owner_hash", String(64), nullable=True, index=True),
    Column("address", String(64), nullable=True, index=True),
)

# The ray backend's directory (issue 12, revision 0003): where each session lives (its shard
# actor), whose it is and from which address, so a restarted directory actor rebuilds its map,
# quotas and owner list from here. No foreign key to sessions: a placement is written before
# the session's first checkpoint.
placements = Table(
    "placements",
    metadata,
    Column("session_id", String(32), primary_key=True),
    Column("shard", Integer, nullable=False),
    Column("owner_hash", String(64), nullable=False),  # "" when created without a token
    Column("address", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Every owner hash that created a session through the directory, in the order it first did
# (replicas read the list from an index: a token issued by one replica works on all of them).
directory_owners = Table(
    "directory_owners",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("owner_hash", String(64), nullable=False, unique=True),
)


# The ray backend's directory's races and time-travel replays (issue 12, revision 0004): whose
# each is, on which shard, and the bytes it last reported at a job's end, so a restarted
# directory actor keeps counting them in the job budgets (app/sessions/job_budgets.py).
directory_holdings = Table(
    "directory_holdings",
    metadata,
    Column("kind", String(8), primary_key=True),  # "race" | "replay"
    Column("key", String(32), primary_key=True),  # the race id | the session id
    Column("owner_hash", String(64), nullable=False),
    Column("shard", Integer, nullable=False),
    Column("nbytes", BigInteger, nullable=False),
)
