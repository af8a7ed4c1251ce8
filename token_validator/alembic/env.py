from cartero_common.db import run_alembic_env
from token_validator.models import Base

run_alembic_env(Base.metadata)
