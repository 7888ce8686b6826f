"""The first schema: sessions, their history chunks and time-travel checkpoints, runs, classes.

Revision ID: 0001_initial
Revises: (none)
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table of app/storage/tables.py as of issue 10."""
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("class_code", sa.String(16), nullable=True),
        sa.Column("learner_name", sa.String(60), nullable=True),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("history_id", sa.Integer(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("history_columns", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
    )
    op.create_index("ix_sessions_class_code", "sessions", ["class_code"])
    op.create_index("ix_sessions_state", "sessions", ["state"])
    op.create_table(
        "history_chunks",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("first_epoch", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"],
            name="fk_history_chunks_session_id_sessions", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "first_epoch", name="pk_history_chunks"),
    )
    op.create_table(
        "timetravel_checkpoints",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"],
            name="fk_timetravel_checkpoints_session_id_sessions", ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "epoch", name="pk_timetravel_checkpoints"),
    )
    op.create_table(
        "runs",
        sa.Column("slug", sa.String(16), nullable=False),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("source_session", sa.String(32), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("dataset", sa.String(40), nullable=False),
        sa.Column("problem", sa.String(20), nullable=False),
        sa.Column("shape", sa.String(80), nullable=False),
        sa.Column("parameters", sa.Integer(), nullable=False),
        sa.Column("epochs", sa.Integer(), nullable=False),
        sa.Column("optimizer", sa.String(20), nullable=False),
        sa.Column("train_loss", sa.Float(), nullable=True),
        sa.Column("test_loss", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("export", sa.LargeBinary(), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary(), nullable=False),
        sa.Column("thumbnail_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("slug", name="pk_runs"),
    )
    op.create_index("ix_runs_owner_hash", "runs", ["owner_hash"])
    op.create_index("ix_runs_gallery", "runs", ["dataset", "public", "test_loss"])
    op.create_table(
        "classes",
        sa.Column("code", sa.String(12), nullable=False),
        sa.Column("teacher_hash", sa.String(64), nullable=False),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("preset", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("code", name="pk_classes"),
    )
    op.create_index("ix_classes_teacher_hash", "classes", ["teacher_hash"])


def downgrade() -> None:
    """Drop every table (the data goes with them)."""
    op.drop_table("classes")
    op.drop_table("runs")
    op.drop_table("timetravel_checkpoints")
    op.drop_table("history_chunks")
    op.drop_table("sessions")
