"""Migrations when several replicas start at once on one database: PostgreSQL, or a SQLite file
(consumers the monitor scales up at once in the embedded mode)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import inspect

from cartero_common.consume import migrate_ledger
from cartero_common.db import make_engine
from tests.support import ROOT, isolated_database, python_env


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


def test_processes_migrating_one_sqlite_file_together_do_not_collide(tmp_path: Path) -> None:
    # A folder that does not exist yet, as `var/` in a fresh checkout.
    url = f"sqlite:///{tmp_path}/var/consumer_sms.db"
    code = f"from cartero_common.consume.ledger import migrate_ledger; migrate_ledger({url!r})"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=python_env(), stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [process.communicate(timeout=120)[1].decode() for process in processes]
    assert [(p.returncode, e[-800:]) for p, e in zip(processes, errors, strict=True) if p.returncode] == []
    engine = make_engine(url)
    try:
        assert "processed_messages" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
