from __future__ import annotations

import re
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cartero_common.clock import FixedClock, fecha
from cartero_common.wire import (
    LINE_BREAKS,
    MAX_SMS_TEXT,
    MAX_SUBJECT,
    NOT_BLANK_PATTERN,
    ONE_LINE_PATTERN,
    PHONE_PATTERN,
    SUBJECT_PATTERN,
    EmailMessage,
    EmailRequest,
    SmsMessage,
    SmsRequest,
    consumed_event,
    normalize_phone,
    sent_event,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+34600111222", "+34600111222"),
        ("600111222", "600111222"),
        ("+34 600-111-222", "+34600111222"),
        ("(91) 555.12.34", "915551234"),
        ("1234567", "1234567"),
        ("+123456789012345", "+123456789012345"),
    ],
)
def test_phone_numbers_accepted_and_normalized(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "123456", "1234567890123456", "+", "abcdefgh", "60011122a", "++34600111222", "34+600"]
)
def test_phone_numbers_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_phone(raw)


def test_sms_request_strips_and_ignores_unknown_fields() -> None:
    sms = SmsRequest.model_validate({"mensaje": "  hola  ", "telefono": "600 111 222", "submit": "Enviar"})
    assert sms.mensaje == "hola"
    assert sms.telefono == "600111222"
    assert not hasattr(sms, "submit")


@pytest.mark.parametrize(
    "body",
    [
        {"telefono": "600111222"},
        {"mensaje": "", "telefono": "600111222"},
        {"mensaje": "   ", "telefono": "600111222"},
        {"mensaje": "x" * 1601, "telefono": "600111222"},
        {"mensaje": "hola", "telefono": 600111222},
        {"mensaje": ["hola"], "telefono": "600111222"},
    ],
)
def test_sms_request_refuses_bad_fields(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SmsRequest.model_validate(body)


def test_email_request_uses_a_real_parser() -> None:
    ok = EmailRequest.model_validate({"destinatario": "Ana@Example.COM", "asunto": "Hola", "cuerpo": "¿Qué tal?"})
    assert ok.destinatario == "Ana@example.com"
    for bad in ["ana.example.com", "ana@", "@example.com", "ana@@example.com", "ana @example.com"]:
        with pytest.raises(ValidationError):
            EmailRequest.model_validate({"destinatario": bad, "asunto": "a", "cuerpo": "b"})


def test_line_breaks_are_exactly_where_splitlines_breaks_and_the_pattern_agrees() -> None:
    breaks = {c for c in map(chr, range(sys.maxunicode + 1)) if len(f"a{c}b".splitlines()) > 1}
    assert set(LINE_BREAKS) == breaks
    pattern = re.compile(ONE_LINE_PATTERN)
    assert all(pattern.fullmatch(f"a{c}b") is None for c in breaks)
    assert pattern.fullmatch("Cita — mañana\t🚀 \x1f\u2027\u202a") is not None


@pytest.mark.parametrize("separator", LINE_BREAKS)
def test_email_subject_must_be_one_line(separator: str) -> None:
    with pytest.raises(ValidationError, match="must be one line"):
        EmailRequest(destinatario="ana@example.com", asunto=f"Hola{separator}Bcc: x@evil.example", cuerpo="b")
    body = {"destinatario": "ana@example.com", "asunto": f"{separator} Hola {separator}", "cuerpo": f"a{separator}b"}
    if separator in "\x1c\x1d\x1e":
        # pydantic strips Unicode White_Space, which leaves the information separators out: a
        # subject that starts or ends with one is refused like any other.
        with pytest.raises(ValidationError, match="must be one line"):
            EmailRequest.model_validate(body)
    else:
        kept = EmailRequest.model_validate(body)
        assert kept.asunto == "Hola" and kept.cuerpo == f"a{separator}b"


def test_fecha_is_madrid_wall_time_in_winter_and_summer() -> None:
    assert fecha(datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC), "Europe/Madrid") == "2026-01-15 13:00:00"
    assert fecha(datetime(2026, 7, 15, 12, 0, 0, tzinfo=UTC), "Europe/Madrid") == "2026-07-15 14:00:00"
    # The last second of a month in UTC is already the next month in Madrid.
    assert fecha(datetime(2026, 1, 31, 23, 30, 0, tzinfo=UTC), "Europe/Madrid") == "2026-02-01 00:30:00"


def test_fixed_clock_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        FixedClock(datetime(2026, 1, 1))
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    assert clock() == datetime(2026, 2, 1, tzinfo=UTC)


def test_sent_event_keeps_the_seed_keys_and_adds_evento() -> None:
    message = {"id": "m1", "mensaje": "hola", "telefono": "600111222", "fecha": "2026-01-01 10:00:00"}
    event = sent_event(message, queue="cola_sms")
    assert event == {**message, "cuerpo": "Petición enviada por un sender", "evento": "enviado", "cola": "cola_sms"}


def test_sent_event_does_not_copy_an_email_body() -> None:
    message = {"id": "m2", "destinatario": "a@b.es", "asunto": "s", "cuerpo": "secreto", "fecha": "f"}
    assert sent_event(message, queue="correos")["cuerpo"] == "Petición enviada por un sender"


def test_consumed_event() -> None:
    message = {"id": "m1", "mensaje": "hola", "telefono": "600111222", "fecha": "f", "evento": "enviado"}
    event = consumed_event(message, queue="cola_sms", fecha_consumo="2026-01-01 10:00:01")
    assert event["evento"] == "consumido"
    assert event["fecha_consumo"] == "2026-01-01 10:00:01"
    assert event["cuerpo"] == "Registro consumido por un consumidor"
    assert event["id"] == "m1" and event["cola"] == "cola_sms"


PHONES_ACCEPTED = ["+34600111222", "600111222", "+34 600-111-222", "(91) 555.12.34", "1234567", "+123456789012345"]
PHONES_REFUSED = ["", "123456", "1234567890123456", "+", "abcdefgh", "60011122a", "++34600111222", "34+600"]


def test_the_documented_phone_pattern_agrees_with_the_check() -> None:
    pattern = re.compile(PHONE_PATTERN)
    assert all(pattern.search(raw) for raw in PHONES_ACCEPTED)
    assert not any(pattern.search(raw) for raw in PHONES_REFUSED)


@given(
    text=st.from_regex(NOT_BLANK_PATTERN).filter(lambda s: len(s) <= MAX_SMS_TEXT),
    asunto=st.from_regex(SUBJECT_PATTERN).filter(lambda s: len(s) <= MAX_SUBJECT),
    telefono=st.from_regex(PHONE_PATTERN),  # its length is maxLength's, documented on its own
)
@settings(max_examples=100, deadline=None, derandomize=True, database=None)
def test_what_the_document_allows_the_checks_accept(text: str, asunto: str, telefono: str) -> None:
    """The OpenAPI patterns are no looser than the checks they document."""
    SmsRequest.model_validate({"mensaje": text, "telefono": "600111222"})
    EmailRequest.model_validate({"destinatario": "ana@example.com", "asunto": asunto, "cuerpo": text})
    normalize_phone(telefono)


def test_the_document_states_each_rule() -> None:
    sms = SmsRequest.model_json_schema()["properties"]
    email = EmailRequest.model_json_schema()["properties"]
    assert sms["telefono"]["pattern"] == PHONE_PATTERN and sms["mensaje"]["pattern"] == NOT_BLANK_PATTERN
    assert email["asunto"]["pattern"] == SUBJECT_PATTERN and email["cuerpo"]["pattern"] == NOT_BLANK_PATTERN
    assert email["destinatario"]["format"] == "email"


@pytest.mark.parametrize("message_id", ["a\x00b", "a\nb", "a\rb", "a\tb", "a\x7fb", "a\x85b", "a\u2028b", ""])
def test_a_message_id_must_be_printable(message_id: str) -> None:
    with pytest.raises(ValidationError, match="id"):
        SmsMessage.model_validate({"id": message_id, "mensaje": "hola", "telefono": "600111222"})
    with pytest.raises(ValidationError, match="id"):
        EmailMessage.model_validate({"id": message_id, "destinatario": "a@b.es", "asunto": "a", "cuerpo": "b"})
    assert SmsMessage.model_validate({"id": "65f1c2ab3d9e1 ñ-_.:/", "mensaje": "x", "telefono": "1"})
