from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cartero_common.amqp.publisher import AsyncPublisher
from cartero_common.http import from_state
from sender.validator_client import ValidatorClient

PublisherDep = Annotated[AsyncPublisher, Depends(from_state("publisher"))]
ValidatorDep = Annotated[ValidatorClient, Depends(from_state("validator"))]
