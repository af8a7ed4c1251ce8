from cartero_common.consume.ledger import LedgerBase
from cartero_common.db import run_alembic_env

run_alembic_env(LedgerBase.metadata)
