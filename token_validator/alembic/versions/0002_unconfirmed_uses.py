"""usages kept for a publish whose outcome is unknown

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("unconfirmed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_usages_unconfirmed_at", ["unconfirmed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usages", schema=None) as batch_op:
        batch_op.drop_index("ix_usages_unconfirmed_at")
        batch_op.drop_column("unconfirmed_at")
        batch_op.drop_column("message_id")
