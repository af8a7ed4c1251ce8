"""room on each page of the counter tables for their updates (PostgreSQL fillfactor 80)

Every decision updates its token's row (and a limited group's): `used`, `period`,
`last_used_at`, none of them indexed. With room on the row's page PostgreSQL writes the new
version there (a HOT update) and touches no index; on a full page it writes it elsewhere and
adds an entry to each of the table's indexes. Rows inserted from now on leave a fifth of each
page free; existing pages get the room when the table is rewritten (`VACUUM FULL tokens`), which
this migration does not do, so upgrading a large table stays quick.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("tokens", "groups")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite updates in place
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
