"""What the message log keeps of a message, and what a list of events shows of its addresses.

Content (the SMS text, an email's subject and body, an unreadable body's text) is dropped before
the event is written unless CONSUMER_LOGS_STORE_CONTENT=true, so it never reaches the disk, its
backups or a replica. Addresses (phone numbers, email addresses) are stored whole: a lookup of
one message by id shows them, since answering "did message X reach this number" is what the log
is for. Lists (any query without `id`) mask them at read time: a list is what gets scrolled,
screenshotted and copied in bulk, and masking there leaves the stored row, and so every earlier
event, answerable by id.
"""

from __future__ import annotations

import re
from typing import Any

# The fields of a message that say what it said (docs/design.md §5, and the PHP senders' own).
CONTENT_FIELDS = ("mensaje", "asunto", "cuerpo")
# The fields that say whom it went to.
PHONE_FIELDS = ("telefono",)
EMAIL_FIELDS = ("destinatario",)
MASK = "*"


# The fields that name an event rather than say anything about the message: never rewritten.
NAMING_FIELDS = ("id", "evento", "cola")
CONTENT_PLACEHOLDER = "[content]"


def _replaced(payload: dict[str, Any], found: dict[str, str]) -> dict[str, Any]:
    """`payload` with each occurrence of a key of `found` inside its free-text fields (a
    failure's `motivo`, say: a gateway's answer may quote the number and the text) replaced."""
    if not found:
        return payload
    shown = dict(payload)
    for key, value in payload.items():
        if key in NAMING_FIELDS or not isinstance(value, str):
            continue
        for secret, replacement in found.items():
            value = value.replace(secret, replacement)
        shown[key] = value
    return shown


def without_content(payload: dict[str, Any]) -> dict[str, Any]:
    """The event with the message's content fields left out, and their text removed from
    wherever else the event quotes it."""
    content = {
        value: CONTENT_PLACEHOLDER
        for key in CONTENT_FIELDS
        if isinstance(value := payload.get(key), str) and value.strip()
    }
    kept = {key: value for key, value in payload.items() if key not in CONTENT_FIELDS}
    return _replaced(kept, content)


def mask_phone(value: str) -> str:
    """`+34600111789` → `+34******789`: the country code (or first two digits) and the last three
    kept, every other character masked. Seven digits or fewer keep only the last two."""
    sign, digits = ("+", value[1:]) if value.startswith("+") else ("", value)
    if len(digits) <= 7:
        return sign + MASK * max(len(digits) - 2, 0) + digits[-2:]
    return sign + digits[:2] + MASK * (len(digits) - 5) + digits[-3:]


def mask_email(value: str) -> str:
    """`juana@example.com` → `j***@example.com`: the first character of the local part and the
    domain kept (the domain says which provider to ask about a bounce)."""
    local, at, domain = value.rpartition("@")
    if not at:
        return MASK * 3
    return f"{local[:1]}{MASK * 3}@{domain}"


def masked(payload: dict[str, Any]) -> dict[str, Any]:
    """The event as a list shows it: every address masked, in its own field and wherever else
    the event quotes it (an SMTP refusal's `motivo` names the recipient)."""
    shown = dict(payload)
    found: dict[str, str] = {}
    for keys, mask in ((PHONE_FIELDS, mask_phone), (EMAIL_FIELDS, mask_email)):
        for key in keys:
            value = shown.get(key)
            # The PHP senders may write a phone number as a JSON number.
            if isinstance(value, str | int) and not isinstance(value, bool):
                shown[key] = mask(str(value))
                if str(value).strip():
                    found[str(value)] = shown[key]
                    # A gateway may quote the number without its plus sign.
                    if str(value).startswith("+") and len(str(value)) > 1:
                        found[str(value)[1:]] = shown[key][1:]
    return _replaced(shown, found)


# What looks like an address in text nobody could parse: a word with an @ inside, or a run of
# 7 to 15 digits (E.164's lengths) with an optional plus.
_EMAIL_LIKE = re.compile(r"[^\s@\"'<>,;:()\[\]{}]+@[^\s@\"'<>,;:()\[\]{}]+")
_PHONE_LIKE = re.compile(r"(?<![0-9])\+?[0-9]{7,15}(?![0-9])")


def masked_text(text: str) -> str:
    """An unreadable body as a list shows it: whatever looks like an address masked, since no
    field says which address the message was for."""
    text = _EMAIL_LIKE.sub(lambda m: mask_email(m.group()), text)
    return _PHONE_LIKE.sub(lambda m: mask_phone(m.group()), text)
