"""The migrations build exactly the tables `models` describes.

Each run migrates a database of its own (a new SQLite file, a new PostgreSQL database), so what
is compared is only what the validator's migrations made: the session's shared PostgreSQL
database also holds the other services' tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from cartero_common.db import make_engine
from tests.support import isolated_database
from tests.token_validator.support import settings_for
from token_validator.__main__ import ALEMBIC, VERSION_TABLE, run_migrations
from token_validator.models import Base


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/schema.db"
        return
    with isolated_database("cartero_schema") as url:
        yield url


def _ours(name: str | None, kind: str, _: object) -> bool:
    return not (kind == "table" and name is not None and name.startswith("alembic_version"))


def test_the_migrated_schema_is_the_models(fresh_url: str) -> None:
    run_migrations(settings_for(fresh_url))
    engine = make_engine(fresh_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"include_name": _ours, "compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_the_webhook_endpoints_migration_goes_down_and_up_again(fresh_url: str) -> None:
    run_migrations(settings_for(fresh_url))
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC))
    config.set_main_option("sqlalchemy.url", fresh_url.replace("%", "%%"))
    config.attributes["version_table"] = VERSION_TABLE
    config.attributes["configure_logger"] = False
    engine = make_engine(fresh_url)
    try:
        command.downgrade(config, "0004")
        assert "webhook_endpoints" not in inspect(engine).get_table_names()
        command.upgrade(config, "head")
        assert "webhook_endpoints" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_the_rate_limits_migration_goes_down_and_up_again(fresh_url: str) -> None:
    run_migrations(settings_for(fresh_url))
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC))
    config.set_main_option("sqlalchemy.url", fresh_url.replace("%", "%%"))
    config.attributes["version_table"] = VERSION_TABLE
    config.attributes["configure_logger"] = False
    engine = make_engine(fresh_url)
    try:
        command.downgrade(config, "0005")
        names = inspect(engine).get_table_names()
        assert "rate_limits" not in names and "webhook_endpoints" in names
        command.upgrade(config, "head")
        assert "rate_limits" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
