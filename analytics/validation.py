"""Validation primitives every app shares: field errors that name the field, text and query rules.

`Invalid` is one field's error inside a larger document (an event of a batch, an item of
an upsert); callers collect it into the details of a `Refusal`. The query-string helpers
raise the `Refusal` themselves.
"""

import re
from typing import Any

from django.http import QueryDict

from analytics.refusals import invalid

# PostgreSQL text and jsonb cannot hold NUL, and control characters are never
# intended in names: refusing them here keeps the database from answering 500.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Invalid(ValueError):
    """One value broke a rule; the message starts with the field at fault."""


def required_text(value: Any, field: str, max_length: int) -> str:
    """Return a non-empty, trimmed string without control characters, or raise Invalid."""
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be a string, not {type_name(value)}")
    if not value:
        raise Invalid(f"{field}: must not be empty")
    if len(value) > max_length:
        raise Invalid(f"{field}: longer than {max_length} characters")
    if CONTROL_RE.search(value):
        raise Invalid(f"{field}: contains a control character")
    if value != value.strip():
        raise Invalid(f"{field}: {value[:64]!r} starts or ends with whitespace")
    return value


def type_name(value: Any) -> str:
    """Return the JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def refuse_repeated(params: QueryDict, *, repeatable: frozenset[str] = frozenset()) -> None:
    """Raise a 400 naming the first parameter sent more than once that takes one value.

    QueryDict.get() quietly keeps the last of repeated values; a client that sent two
    limits meant something, and answering for one of them would hide the mistake.
    """
    for name, values in params.lists():
        if len(values) > 1 and name not in repeatable:
            raise invalid(name[:64], f"given {len(values)} times; it takes one value")


def without_nul(field: str, value: str) -> str:
    """Return `value`, or raise a 400 naming `field` if it holds NUL.

    PostgreSQL text cannot hold NUL, so no name can match it, and sending one to the
    database fails the whole query (a 500) instead of matching nothing.
    """
    if "\x00" in value:
        raise invalid(field, "must not contain NUL (0x00) characters")
    return value
