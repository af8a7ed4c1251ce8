"""What the message log keeps and masks: the rules live in `cartero_common.privacy`, shared with
the dead letters' previews, so both show a message the same way."""

from cartero_common.privacy import (
    CONTENT_FIELDS,
    CONTENT_PLACEHOLDER,
    EMAIL_FIELDS,
    PHONE_FIELDS,
    mask_email,
    mask_phone,
    masked,
    masked_text,
    without_content,
)

__all__ = [
    "CONTENT_FIELDS",
    "CONTENT_PLACEHOLDER",
    "EMAIL_FIELDS",
    "PHONE_FIELDS",
    "mask_email",
    "mask_phone",
    "masked",
    "masked_text",
    "without_content",
]
