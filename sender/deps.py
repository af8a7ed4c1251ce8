from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cartero_common.aio_amqp import AsyncPublisher
from cartero_common.clock import Clock
from cartero_common.http import from_state
from sender.config import Settings
from sender.validator_client import ValidatorClient

SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
PublisherDep = Annotated[AsyncPublisher, Depends(from_state("publisher"))]
ValidatorDep = Annotated[ValidatorClient, Depends(from_state("validator"))]
ClockDep = Annotated[Clock, Depends(from_state("clock"))]
