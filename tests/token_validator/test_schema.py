"""The migrations build exactly the tables `models` describes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from token_validator.db import Database
from token_validator.models import Base


def _ours(name: str | None, kind: str, _: object) -> bool:
    return not (kind == "table" and name is not None and name.startswith("alembic_version"))


def test_the_migrated_schema_is_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": _ours, "compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
