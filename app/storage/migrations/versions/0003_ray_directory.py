"""The ray backend's directory in the database: placements and directory_owners (issue 12).

The directory actor (app/backends/ray_directory.py) writes each session's placement (shard,
owner hash, address) and each new owner hash here before it answers, and rebuilds its map, its
quotas' counts and its owner list from these tables when Ray restarts it.

Revision ID: 0003_ray_directory
Revises: 0002_class_creators
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_ray_directory"
down_revision = "0002_class_creators"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create placements and directory_owners."""
    op.create_table(
        "placements",
        sa.Column("session_id", sa.String(32), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_placements"),
    )
    op.create_table(
        "directory_owners",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_directory_owners"),
        sa.UniqueConstraint("owner_hash", name="uq_directory_owners_owner_hash"),
    )


def downgrade() -> None:
    """Drop them (a directory then lives in its actor's memory only)."""
    op.drop_table("directory_owners")
    op.drop_table("placements")
