"""webhook endpoints: where an owner's messages' outcomes are posted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("application_id", _ID, nullable=True),
        sa.Column("group_id", _ID, nullable=True),
        sa.Column("user_id", _ID, nullable=True),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(owner_type = 'application' AND application_id IS NOT NULL AND group_id IS NULL AND user_id IS NULL)"
            " OR (owner_type = 'group' AND group_id IS NOT NULL AND application_id IS NULL AND user_id IS NULL)"
            " OR (owner_type = 'user' AND user_id IS NOT NULL AND application_id IS NULL AND group_id IS NULL)",
            name=op.f("ck_webhook_endpoints_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_webhook_endpoints_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["groups.id"], name=op.f("fk_webhook_endpoints_group_id_groups"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_webhook_endpoints_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_endpoints_application_id", ["application_id"], unique=False)
        batch_op.create_index("ix_webhook_endpoints_group_id", ["group_id"], unique=False)
        batch_op.create_index("ix_webhook_endpoints_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_endpoints_user_id")
        batch_op.drop_index("ix_webhook_endpoints_group_id")
        batch_op.drop_index("ix_webhook_endpoints_application_id")
    op.drop_table("webhook_endpoints")
