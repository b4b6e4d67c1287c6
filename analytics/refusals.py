"""The one way the platform refuses a request: `Refusal`, with its status, message and detail.

Domain code (parsers, validation, services, queries) raises it and never a DRF exception;
the API's exception handler (`analytics.api_errors`) and, for plain Django views,
`analytics.middleware.RefusalMiddleware` render it as the platform's JSON error body
`{"error": "...", "detail": [...]}`.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from django.db import InterfaceError, OperationalError

# A database that cannot be reached, or a connection lost mid-request (a restart, a
# failover, a terminated backend): nothing was committed, and a retry may succeed. The
# COPY path works on the raw psycopg connection, whose errors Django does not wrap.
DATABASE_LOST = (OperationalError, InterfaceError, psycopg.OperationalError)
# What a client told "the database is unavailable" should wait before it retries.
DATABASE_RETRY_AFTER_S = 5


def error_body(error: str, detail: Sequence[Any] | None = None) -> dict[str, Any]:
    """Return the platform's error body."""
    return {"error": error, "detail": list(detail or [])}


class Refusal(Exception):
    """A request refused as a whole: nothing it carried was written.

    `field` and `reason` keep the parts of a one-field refusal (see `invalid`), so a
    caller that reports errors in its own words (a model's `clean()`, a page) can reuse
    them without parsing the message.
    """

    def __init__(
        self,
        status: int,
        error: str,
        detail: Sequence[Mapping[str, Any]] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        field: str = "",
        reason: str = "",
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail: list[Mapping[str, Any]] = list(detail or [])
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.field = field
        self.reason = reason or error

    def body(self) -> dict[str, Any]:
        """Return the JSON body that answers this refusal."""
        return {**error_body(self.error, self.detail), **self.extra}


def invalid(field: str, reason: str) -> Refusal:
    """Return the 400 naming `field` and what is wrong with it."""
    return Refusal(
        400,
        f"invalid request: {field}: {reason}",
        [{"field": field, "error": reason}],
        field=field,
        reason=reason,
    )


def not_found(error: str) -> Refusal:
    """Return the 404 saying what was not found."""
    return Refusal(404, error)


def database_unavailable() -> Refusal:
    """Return the 503 of a database that cannot be reached: nothing was written, retry later."""
    return Refusal(
        503,
        "the database is unavailable; nothing was written, retry later",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )
