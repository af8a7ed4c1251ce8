"""Migrations when several replicas start at once on one PostgreSQL database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import inspect

from cartero_common.db import make_engine
from cartero_common.ledger import migrate_ledger
from tests.support import isolated_database


def test_replicas_migrating_together_do_not_collide() -> None:
    with isolated_database("cartero_migrate") as url:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for future in [pool.submit(migrate_ledger, url) for _ in range(4)]:
                future.result()
        engine = make_engine(url)
        try:
            assert "processed_messages" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
