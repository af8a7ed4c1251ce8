"""processed_messages.provider: which provider took each message

Revision ID: ledger_0002
Revises: ledger_0001
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ledger_0002"
down_revision: str | None = "ledger_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_messages") as batch:
        batch.add_column(sa.Column("provider", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_messages") as batch:
        batch.drop_column("provider")
