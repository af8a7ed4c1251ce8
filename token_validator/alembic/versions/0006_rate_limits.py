"""rate limits: a token's or a group's uses per second or minute, and its window's leases

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("token_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column("allowance", sa.Integer(), nullable=False),
        sa.Column("per_seconds", sa.Integer(), nullable=False),
        sa.Column("window_index", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("granted", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_grant", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("(token_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_rate_limits_one_target")),
        sa.CheckConstraint("per_seconds IN (1, 60)", name=op.f("ck_rate_limits_per")),
        sa.CheckConstraint("allowance >= 1", name=op.f("ck_rate_limits_allowance")),
        sa.ForeignKeyConstraint(
            ["token_id"], ["tokens.id"], name=op.f("fk_rate_limits_token_id_tokens"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_rate_limits_group_id_groups"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limits")),
        sa.UniqueConstraint("token_id", name=op.f("uq_rate_limits_token_id")),
        sa.UniqueConstraint("group_id", name=op.f("uq_rate_limits_group_id")),
    )


def downgrade() -> None:
    op.drop_table("rate_limits")
