from cartero_common.db import run_alembic_env
from consumer_logs.models import Base

run_alembic_env(Base.metadata)
