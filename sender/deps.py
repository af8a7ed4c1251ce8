from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cartero_common.aio_amqp import AsyncPublisher
from cartero_common.clock import Clock
from sender.config import Settings
from sender.validator_client import ValidatorClient


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_publisher(request: Request) -> AsyncPublisher:
    publisher: AsyncPublisher = request.app.state.publisher
    return publisher


def get_validator(request: Request) -> ValidatorClient:
    validator: ValidatorClient = request.app.state.validator
    return validator


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


SettingsDep = Annotated[Settings, Depends(get_settings)]
PublisherDep = Annotated[AsyncPublisher, Depends(get_publisher)]
ValidatorDep = Annotated[ValidatorClient, Depends(get_validator)]
ClockDep = Annotated[Clock, Depends(get_clock)]
