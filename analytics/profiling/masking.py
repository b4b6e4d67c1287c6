"""Masking of credentials in what silk stores: headers, query strings, bodies and SQL text.

Silk masks the `Authorization` header, header names listed exactly in SILKY_SENSITIVE_KEYS,
and fields of JSON or form bodies. It stores query strings as they came, misses NDJSON and
plain-text bodies, and never looks at SQL. The functions here close those gaps, two ways:

- by name: a header, query parameter or body field whose name matches a sensitive word
  (SILKY_SENSITIVE_KEYS) has its value replaced;
- by value: the credentials a request carries (its `Authorization` credential, `X-Api-Key`,
  `api_key`-like parameters and fields, session and CSRF cookies) and anything shaped like
  one of the platform's API keys are replaced wherever they appear, SQL and responses too.
"""

import json
import re
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.request import RawPostDataException

from analytics.services.tenants import KEY_PREFIX_MARK

MASK = "********************"
# The platform's API keys: ak_<8 hex prefix>_<urlsafe secret>.
API_KEY_SHAPE = re.compile(rf"\b{KEY_PREFIX_MARK}_[0-9a-f]{{8}}_[A-Za-z0-9_-]{{16,}}")
# Names whose values are credentials that may be echoed elsewhere (SQL, responses). Narrower
# than the masking by name: `key=region` on the catalog API must not mask every "region".
CREDENTIAL_NAME = re.compile(
    r"api[-_]?key|access[-_]?key|token|secret|passw|authorization|signature|session|csrf", re.I
)
# Shorter values are left alone: masking "1" or "eu" everywhere would destroy the record.
MIN_SECRET_LENGTH = 6
_current_request: ContextVar[HttpRequest | None] = ContextVar("profiled_request", default=None)


def sensitive_name() -> re.Pattern[str]:
    """Return the pattern of header, parameter and field names whose values are masked."""
    words = sorted(getattr(settings, "SILKY_SENSITIVE_KEYS", ()) or ("key", "token", "secret"))
    return re.compile("|".join(re.escape(word) for word in words), re.I)


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """Return `text` with every known secret and every API-key-shaped token replaced."""
    if not text:
        return text
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return API_KEY_SHAPE.sub(MASK, text)


def _mask_value(value: Any, secrets: frozenset[str], names: re.Pattern[str]) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if names.search(str(key)) else _mask_value(item, secrets, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_value(item, secrets, names) for item in value]
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


def mask_json_text(text: str, secrets: frozenset[str]) -> str | None:
    """Return JSON (or NDJSON) `text` with sensitive fields masked, or None if it is neither."""
    names = sensitive_name()
    ascii_only = getattr(settings, "SILKY_JSON_ENSURE_ASCII", True)
    try:
        document = json.loads(text)
    except ValueError:
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            documents = [json.loads(line) for line in lines]
        except ValueError:
            return None
        if not documents:
            return None
        masked = (_mask_value(doc, secrets, names) for doc in documents)
        return "\n".join(json.dumps(doc, ensure_ascii=ascii_only) for doc in masked)
    return json.dumps(
        _mask_value(document, secrets, names), sort_keys=True, indent=4, ensure_ascii=ascii_only
    )


def mask_pairs(text: str) -> str:
    """Return `name=value&...` or `name: value` text with values of sensitive names masked."""
    names = sensitive_name().pattern
    pattern = re.compile(rf"(\b[\w-]*(?:{names})[\w-]*\"?\s*[=:]\s*\"?)([^&\s\"',;]+)", re.I)
    return pattern.sub(rf"\1{MASK}", text)


def mask_body(body: Any, secrets: frozenset[str]) -> str:
    """Return a stored request or response body with its credentials masked."""
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body)
    if not text:
        return text
    masked = mask_json_text(text, secrets)
    if masked is None:
        masked = mask_pairs(text)
    return mask_text(masked, secrets)


def mask_mapping_json(encoded: str, secrets: frozenset[str]) -> str:
    """Return silk's JSON of headers or query parameters with sensitive entries masked."""
    if not encoded:
        return encoded
    try:
        mapping = json.loads(encoded)
    except ValueError:
        return mask_text(mask_pairs(encoded), secrets)
    if not isinstance(mapping, dict):
        return mask_text(encoded, secrets)
    names = sensitive_name()
    masked = {
        key: MASK if names.search(str(key)) else _mask_value(value, secrets, names)
        for key, value in mapping.items()
    }
    return json.dumps(masked, ensure_ascii=getattr(settings, "SILKY_JSON_ENSURE_ASCII", True))


def _credential_values(value: Any, named: bool) -> Iterable[str]:
    """Yield the string leaves of `value` that sit under a credential-like name."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _credential_values(item, named or bool(CREDENTIAL_NAME.search(str(key))))
    elif isinstance(value, list):
        for item in value:
            yield from _credential_values(item, named)
    elif named and isinstance(value, str | int):
        yield str(value)


def request_secrets(request: HttpRequest) -> frozenset[str]:
    """Return the credentials `request` carries, with each API key's prefix and secret parts."""
    found: list[str] = []
    for name, value in request.headers.items():
        if CREDENTIAL_NAME.search(name) and name.lower() != "cookie":
            found.append(value)
            found.extend(value.split()[1:])  # "Bearer <key>": the credential alone too
    found.extend(request.COOKIES.get(name, "") for name in _credential_cookies())
    for name, values in request.GET.lists():
        if CREDENTIAL_NAME.search(name):
            found.extend(values)
    found.extend(_body_credentials(request))
    expanded: set[str] = set()
    for value in found:
        expanded.add(value)
        if API_KEY_SHAPE.fullmatch(value):
            _, prefix, secret = value.split("_", 2)
            expanded.update({prefix, secret})
    return frozenset(value for value in expanded if len(value) >= MIN_SECRET_LENGTH)


def _credential_cookies() -> tuple[str, ...]:
    return (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)


def _body_credentials(request: HttpRequest) -> list[str]:
    """Return credential values of a form, JSON or NDJSON body small enough for silk to store."""
    limit = getattr(settings, "SILKY_MAX_REQUEST_BODY_SIZE", -1)
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return []
    if not length or (limit > -1 and length > limit):
        return []
    content_type = request.content_type or ""
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return [
            value
            for name, values in request.POST.lists()
            if CREDENTIAL_NAME.search(name)
            for value in values
        ]
    try:
        text = request.body.decode("utf-8")
    except (UnicodeDecodeError, RawPostDataException):
        return []
    values: list[str] = []
    for line in text.splitlines() if "\n" in text.strip() else [text]:
        try:
            values.extend(_credential_values(json.loads(line), named=False))
        except ValueError:
            continue
    return values


def set_current_request(request: HttpRequest | None) -> Any:
    """Make `request` the one whose credentials are masked in this context; return the reset token."""
    return _current_request.set(request)


def reset_current_request(token: Any) -> None:
    """Undo `set_current_request`."""
    _current_request.reset(token)


def current_secrets() -> frozenset[str]:
    """Return the credentials of the request being recorded (computed once per request)."""
    request = _current_request.get()
    if request is None:
        return frozenset()
    cached: frozenset[str] | None = getattr(request, "_profiling_secrets", None)
    if cached is None:
        cached = request_secrets(request)
        request._profiling_secrets = cached  # type: ignore[attr-defined]
    return cached
