from cartero_common.db import run_alembic_env
from cartero_common.ledger import LedgerBase

run_alembic_env(LedgerBase.metadata)
