"""pre_save receivers that mask credentials in silk's Request and Response rows."""

import base64
import binascii
from typing import Any

from analytics.profiling.masking import (
    API_KEY_SHAPE,
    current_secrets,
    mask_body,
    mask_mapping_json,
    mask_text,
)

# Silk also saves a Request once per recorded SQL statement to bump its query count; those
# saves touch none of the fields below, so the masking is skipped for them.
_REQUEST_FIELDS = frozenset({"path", "query_params", "encoded_headers", "body", "raw_body"})


def mask_silk_request(sender: Any, instance: Any, update_fields: Any = None, **_: Any) -> None:
    """Mask credentials in a silk Request before it is written."""
    if update_fields is not None and not _REQUEST_FIELDS.intersection(update_fields):
        return
    secrets = current_secrets()
    instance.path = mask_text(instance.path or "", secrets)
    instance.query_params = mask_mapping_json(instance.query_params or "", secrets)
    instance.encoded_headers = mask_mapping_json(instance.encoded_headers or "", secrets)
    instance.body = mask_body(instance.body, secrets)
    instance.raw_body = mask_body(instance.raw_body, secrets)


def mask_silk_response(sender: Any, instance: Any, **_: Any) -> None:
    """Mask credentials in a silk Response (headers, body and base64 raw body) before it is written."""
    secrets = current_secrets()
    instance.encoded_headers = mask_mapping_json(instance.encoded_headers or "", secrets)
    instance.body = mask_body(instance.body, secrets)
    instance.raw_body = _mask_base64(instance.raw_body or "", secrets)


def _mask_base64(encoded: str, secrets: frozenset[str]) -> str:
    """Return silk's base64 copy of a response with credentials masked inside it."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Binary (a gzip body, say): keep it unless a credential shows through as bytes.
        needles = [secret.encode() for secret in secrets]
        if any(needle in raw for needle in needles) or API_KEY_SHAPE.search(raw.decode("latin-1")):
            return ""
        return encoded
    masked = mask_body(text, secrets)
    return encoded if masked == text else base64.b64encode(masked.encode("utf-8")).decode("ascii")
