"""panel sessions and the sign-in throttle's failures, kept in the database

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing admins count as having set their password when their account was made.
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE admins SET password_changed_at = created_at")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.alter_column("password_changed_at", existing_type=sa.DateTime(timezone=True), nullable=False)

    op.create_table(
        "panel_sessions",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("admin_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admins.id"], name=op.f("fk_panel_sessions_admin_id_admins"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_panel_sessions")),
    )
    with op.batch_alter_table("panel_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_panel_sessions_admin_id", ["admin_id"], unique=False)
        batch_op.create_index("ix_panel_sessions_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "sign_in_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_attempts")),
    )
    with op.batch_alter_table("sign_in_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_sign_in_attempts_at", ["at"], unique=False)
        batch_op.create_index("ix_sign_in_attempts_client_ip_at", ["client_ip", "at"], unique=False)
        batch_op.create_index(
            "ix_sign_in_attempts_username_client_ip_at", ["username", "client_ip", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sign_in_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_sign_in_attempts_username_client_ip_at")
        batch_op.drop_index("ix_sign_in_attempts_client_ip_at")
        batch_op.drop_index("ix_sign_in_attempts_at")
    op.drop_table("sign_in_attempts")
    with op.batch_alter_table("panel_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_panel_sessions_expires_at")
        batch_op.drop_index("ix_panel_sessions_admin_id")
    op.drop_table("panel_sessions")
    with op.batch_alter_table("admins", schema=None) as batch_op:
        batch_op.drop_column("password_changed_at")
