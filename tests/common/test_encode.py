from __future__ import annotations

import json
from typing import Any

import pytest

from cartero_common.amqp import encode


def _standard(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "m1", "mensaje": "hola", "telefono": "+34600111222", "fecha": "2024-03-31 03:30:00"},
        {"id": "m2", "asunto": "¿Qué tal? ñandú — 🚀", "cuerpo": 'línea 1\nlínea 2\t"citas" \\ \u0001'},
        {"intento": 3, "espera_s": 30.0, "ratio": 0.1, "neg": -2, "big": 2**63 - 1, "ok": True, "nada": None},
        {"nested": {"list": [1, "two", 3.5, [], {}], "empty": ""}},
    ],
)
def test_encode_writes_the_bytes_of_the_standard_compact_encoder(payload: dict[str, Any]) -> None:
    assert encode(payload) == _standard(payload)


def test_what_orjson_refuses_still_encodes() -> None:
    payload: dict[Any, Any] = {"huge": 2**70, 1: "int key"}
    assert encode(payload) == _standard(payload)
