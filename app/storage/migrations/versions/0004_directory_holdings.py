"""The ray backend's directory's races and time-travel replays: directory_holdings (issue 12).

The directory actor (app/backends/ray_directory.py) writes each race and replay (whose, on which
shard, the bytes it reported at its last job's end) here, and a directory that Ray restarts
reads them back in its constructor, so the job budgets (max_races_per_owner,
max_replays_per_owner, the memory budgets: app/sessions/job_budgets.py) still count them.

Revision ID: 0004_directory_holdings
Revises: 0003_ray_directory
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_directory_holdings"
down_revision = "0003_ray_directory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create directory_holdings."""
    op.create_table(
        "directory_holdings",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("key", sa.String(32), nullable=False),
        sa.Column("owner_hash", sa.String(64), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("nbytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_directory_holdings"),
    )


def downgrade() -> None:
    """Drop it (a restarted directory then forgets races and replays)."""
    op.drop_table("directory_holdings")
