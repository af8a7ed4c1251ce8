"""Message schemas on the wire, field for field compatible with the team's PHP services.

Requests (what a client posts) and messages (what travels on the queues) are separate models:
a request is validated strictly; a message from the queue is read leniently, because the PHP
senders write it too.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

QUEUE_SMS = "cola_sms"
QUEUE_EMAIL = "correos"
QUEUE_LOGS = "logs"
SHARED_QUEUES = (QUEUE_SMS, QUEUE_EMAIL, QUEUE_LOGS)


def route_exchange(queue: str) -> str:
    """The direct exchange, bound to `queue` alone (binding key: the queue's name), through which
    Cartero's sender and monitor publish to it. A publish is authorised by exchange, not by
    queue, so a role allowed only these exchanges reaches only these queues; the default
    exchange (the PHP services', and the consumers' for their retry queues) reaches every one."""
    return f"cartero.{queue}"


MAX_SMS_TEXT = 1600  # ten concatenated SMS segments
MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_EMAIL_BODY = 60_000  # stays inside the sender's 64 KiB body limit

_PHONE_SEPARATORS = re.compile(r"[\s\-.()]")
_PHONE = re.compile(r"\+?[0-9]{7,15}")
# Every character `str.splitlines()` breaks a line at. A mail header may hold none of them (Python's
# email package refuses each one), so a subject with one inside can never be sent.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# The same set as a pattern written in escapes that ECMA-262, JSON Schema and Python all read alike.
ONE_LINE_PATTERN = r"^[^\n\r\v\f\x1c-\x1e\x85\u2028\u2029]*$"

# What the validators below check, as JSON Schema patterns for the OpenAPI document, so that a
# client (or schemathesis) can tell a valid request from its schema alone. A JSON Schema pattern
# is searched for, not matched whole. The character classes are spelled out: Python's, pydantic's
# (Rust) and ECMA-262's (a client's) `\s` are three different sets.
# Python's `str.isspace`, what `_not_blank` strips: "not blank" is any other character.
_PY_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_PATTERN = f"[^{_PY_SPACE}]"
# Unicode White_Space, what `str_strip_whitespace` (pydantic-core) strips from a subject's ends
# first: a line break there goes with it. U+001C–U+001E are line breaks to `_one_line` but not
# White_Space, so they stay and refuse the subject wherever they are.
_STRIPPED = r"[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"
_ONE_LINE = r"[^\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*"
SUBJECT_PATTERN = rf"^{_STRIPPED}{_ONE_LINE}{NOT_BLANK_PATTERN}{_ONE_LINE}{_STRIPPED}$"
PHONE_PATTERN = r"^[\s\-.()]*(?:\+[\s\-.()]*)?(?:[0-9][\s\-.()]*){7,15}$"


class Evento(StrEnum):
    """The `evento` of a `logs` event, spelt as the wire (and the PHP side) spells it. Inside the
    code each has an English name; the Spanish word exists only here."""

    SENT = "enviado"  # a sender queued the message
    CONSUMED = "consumido"  # a consumer delivered it (or found it already delivered)
    RETRYING = "reintento"  # an attempt failed for a reason that may pass; it will be tried again
    FAILED = "fallido"  # given up: moved to the dead-letter queue
    REJECTED = "rechazado"  # unreadable: moved to the dead-letter queue untouched
    SCALED_UP = "creacion"  # the monitor started a consumer
    SCALED_DOWN = "eliminacion"  # the monitor removed one


# Events only a consumer writes: each says the message was taken from its queue.
CONSUMER_EVENTS = frozenset({Evento.CONSUMED, Evento.RETRYING, Evento.FAILED, Evento.REJECTED})


class Settled(StrEnum):
    """How a consumer settled a delivery: the `outcome` label of its metrics and log lines.
    Each is the `evento` it reports, except a duplicate, reported as `consumido`."""

    CONSUMED = Evento.CONSUMED.value
    DUPLICATE = "duplicado"
    RETRYING = Evento.RETRYING.value
    FAILED = Evento.FAILED.value
    REJECTED = Evento.REJECTED.value


def normalize_phone(value: str) -> str:
    """E.164 or national digits: 7–15 digits, optional leading `+`; spaces and dashes dropped."""
    compact = _PHONE_SEPARATORS.sub("", value)
    if not _PHONE.fullmatch(compact):
        raise ValueError("must be 7 to 15 digits, optionally starting with +")
    return compact


def normalize_email(value: str) -> str:
    """Checked by a real RFC 5322/6531 parser; the domain is not looked up (no network here)."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _one_line(value: str) -> str:
    if len(value.splitlines()) > 1:
        raise ValueError("must be one line: no line, paragraph or record separators")
    return value


EmailAddress = Annotated[
    str,
    StringConstraints(max_length=320),
    Field(
        json_schema_extra={"format": "email"},
        description="An address that can receive mail: special-use names (RFC 6761: .test, .invalid,"
        " .localhost…) are refused.",
    ),
    AfterValidator(normalize_email),
]
Phone = Annotated[
    str,
    StringConstraints(max_length=32),
    Field(json_schema_extra={"pattern": PHONE_PATTERN}),
    AfterValidator(normalize_phone),
]
# Each pattern documents the check after it, which stays the check: its message says what is
# wrong instead of repeating a pattern.
SmsText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SMS_TEXT),
    Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN}),
    AfterValidator(_not_blank),
]
Subject = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_SUBJECT),
    Field(json_schema_extra={"pattern": SUBJECT_PATTERN}),
    AfterValidator(_not_blank),
    AfterValidator(_one_line),
]
EmailBody = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_EMAIL_BODY),
    Field(json_schema_extra={"pattern": NOT_BLANK_PATTERN}),
    AfterValidator(_not_blank),
]


class SmsRequest(BaseModel):
    """`POST /v1/sms`. Unknown fields are ignored: the PHP forms post their submit buttons too."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    mensaje: SmsText
    telefono: Phone


class EmailRequest(BaseModel):
    """`POST /v1/email`. The address is checked by a real parser (email-validator)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    destinatario: EmailAddress
    asunto: Subject
    cuerpo: EmailBody


# A message id is a ledger key, an AMQP message-id, a column of the message log and part of an
# email's Message-ID header: a control character or a line break in it fails one of those on
# every delivery (PostgreSQL refuses NUL, a mail header any line break), so it is not read.
_CONTROL_OR_LINE_BREAK = re.compile(f"[\x00-\x1f\x7f-\x9f{re.escape(LINE_BREAKS)}]")


def _no_control_characters(value: str) -> str:
    if _CONTROL_OR_LINE_BREAK.search(value):
        raise ValueError("must hold no control characters or line breaks")
    return value


MessageId = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_control_characters)]


class SmsMessage(BaseModel):
    """What `cola_sms` carries: `{"id", "mensaje", "telefono", "fecha"}`."""

    model_config = ConfigDict(extra="allow")

    id: MessageId
    mensaje: str
    telefono: str
    fecha: str | None = None


class EmailMessage(BaseModel):
    """What `correos` carries: `{"id", "destinatario", "asunto", "cuerpo", "fecha"}`."""

    model_config = ConfigDict(extra="allow")

    id: MessageId
    destinatario: str
    asunto: str
    cuerpo: str
    fecha: str | None = None


def sent_event(message: dict[str, Any], *, queue: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `logs` event a sender writes for a queued message (the seed's keys, plus `evento`)."""
    # As in the seed, `cuerpo` is overwritten: an email's body is not copied into the log.
    event = dict(message)
    event.update(extra or {})
    event["cuerpo"] = "Petición enviada por un sender"
    event["evento"] = Evento.SENT
    event["cola"] = queue
    return event


def consumed_event(
    message: dict[str, Any],
    *,
    queue: str,
    fecha_consumo: str,
    evento: Evento = Evento.CONSUMED,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `logs` event a consumer writes about a message it handled."""
    event = {k: v for k, v in message.items() if k != "evento"}
    event["cuerpo"] = "Registro consumido por un consumidor"
    event["fecha_consumo"] = fecha_consumo
    event["evento"] = evento
    event["cola"] = queue
    event.update(extra or {})
    return event


def retry_event(
    message: dict[str, Any],
    *,
    queue: str,
    fecha_consumo: str,
    intento: int,
    motivo: str,
    espera_s: float,
    proximo_intento: str,
) -> dict[str, Any]:
    """`reintento`: attempt `intento` failed for a reason that may pass; the next in `espera_s`,
    at `proximo_intento` (ISO 8601 with its offset: what a caller asking for the message's status
    is told, unambiguous where `fecha_consumo`'s wall time, to the second, is not)."""
    extra = {"intento": intento, "motivo": motivo, "espera_s": espera_s, "proximo_intento": proximo_intento}
    return consumed_event(message, queue=queue, fecha_consumo=fecha_consumo, evento=Evento.RETRYING, extra=extra)


def failed_event(
    message: dict[str, Any], *, queue: str, fecha_consumo: str, intentos: int, motivo: str, dlq: str
) -> dict[str, Any]:
    """`fallido`: given up after `intentos` attempts and moved to the dead-letter queue `dlq`."""
    extra = {"intentos": intentos, "motivo": motivo, "dlq": dlq}
    return consumed_event(message, queue=queue, fecha_consumo=fecha_consumo, evento=Evento.FAILED, extra=extra)


def rejected_event(message_id: str | None, *, queue: str, fecha_consumo: str, motivo: str, dlq: str) -> dict[str, Any]:
    """`rechazado`: the message could not be read at all; moved to `dlq` untouched. Only its id
    (when there is one) is reported, never the body."""
    extra = {"motivo": motivo, "dlq": dlq}
    return consumed_event(
        {"id": message_id}, queue=queue, fecha_consumo=fecha_consumo, evento=Evento.REJECTED, extra=extra
    )


def scale_event(
    evento: Literal[Evento.SCALED_UP, Evento.SCALED_DOWN],
    *,
    contenedor: str,
    cola: str,
    replicas: int,
    now: datetime,
    timezone: str,
) -> dict[str, Any]:
    """The `logs` event the monitor writes for each consumer it starts (`creacion`) or removes
    (`eliminacion`); `replicas` counts the consumers running once that change is made.

    `timestamp` is ISO 8601 with its UTC offset, in `timezone`: unambiguous across DST changes,
    unlike `fecha`'s wall time.
    """
    return {
        "evento": evento,
        "contenedor": contenedor,
        "timestamp": now.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds"),
        "cola": cola,
        "replicas": replicas,
    }
