"""events table

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("evento", sa.String(40), nullable=True),
        sa.Column("cola", sa.String(200), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("readable", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_events")),
    )
    op.create_index("ix_events_message_id", "events", ["message_id"])
    op.create_index("ix_events_evento_stored_at", "events", ["evento", "stored_at"])
    op.create_index("ix_events_cola_stored_at", "events", ["cola", "stored_at"])
    op.create_index("ix_events_stored_at", "events", ["stored_at"])


def downgrade() -> None:
    op.drop_table("events")
