"""Who created each class: classes.owner_hash and classes.address (the class quotas).

max_classes_per_owner and max_classes_per_address count these columns, so the quotas hold
across restarts. Classes created before this revision keep NULL (no creator known: they count
towards max_classes only). A column that is already there (a database a development build
altered by hand) is left as it is.

Revision ID: 0002_class_creators
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_class_creators"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

COLUMNS = (("owner_hash", "ix_classes_owner_hash"), ("address", "ix_classes_address"))


def upgrade() -> None:
    """Add the creator columns and their indexes where missing."""
    inspector = sa.inspect(op.get_bind())
    present = {column["name"] for column in inspector.get_columns("classes")}
    indexes = {index["name"] for index in inspector.get_indexes("classes")}
    with op.batch_alter_table("classes") as batch:
        for name, _ in COLUMNS:
            if name not in present:
                batch.add_column(sa.Column(name, sa.String(64), nullable=True))
    for name, index in COLUMNS:
        if index not in indexes:
            op.create_index(index, "classes", [name])


def downgrade() -> None:
    """Drop the creator columns (the quotas then count nothing but max_classes)."""
    for _, index in COLUMNS:
        op.drop_index(index, table_name="classes")
    with op.batch_alter_table("classes") as batch:
        for name, _ in COLUMNS:
            batch.drop_column(name)
