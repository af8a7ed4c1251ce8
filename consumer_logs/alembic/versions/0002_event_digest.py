"""events.digest: a redelivered event is stored once

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("events", sa.Column("digest", sa.String(64), nullable=True))
    op.create_index("ux_events_digest", "events", ["digest"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_events_digest", table_name="events")
    op.drop_column("events", "digest")
