"""The one exception ingestion raises for a refused request: status, message, detail."""

from typing import Any


class IngestRefused(Exception):
    """A request is refused as a whole; nothing it carried was written."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: list[Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail or []
        self.headers = headers or {}
        self.extra = extra or {}
