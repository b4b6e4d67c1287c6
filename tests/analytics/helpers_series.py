"""Helpers for series and catalog API tests: fixed past times, writing points, reading the API."""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.models import Project
from analytics.queries.series import align_down
from analytics.services import IssuedKey
from analytics.services.points import CleanPoint, ingest_points
from tests.helpers import bearer

# Midnight UTC at least three days ago: every bucket width used in the tests (up to a
# day) starts exactly here, and every bucket of the data lies wholly in the past.
BASE = align_down(datetime.now(UTC) - timedelta(days=3), timedelta(days=1))
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def write(
    project: Project,
    metric: str,
    tags: dict[str, str],
    points: Iterable[tuple[timedelta, float]],
) -> None:
    """Store `(offset from BASE, value)` points in the series (metric, tags) of `project`."""
    key = (metric, tuple(sorted(tags.items())), None)
    clean = [CleanPoint(key, BASE + offset, value, None) for offset, value in points]
    ingest_points(project_id=project.pk, points=clean, series_limit=1000)


def ms(moment: datetime) -> int:
    """Return `moment` as epoch milliseconds, as the API writes `times`."""
    return int(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def get_series(client: Any, issued: IssuedKey | None, **params: Any) -> Any:
    """GET /api/v1/series with `params` (lists repeat the parameter) and a Bearer key."""
    headers = bearer(issued) if issued is not None else {}
    return client.get("/api/v1/series", params, **headers)


def invalid(field: str, error: str) -> dict[str, Any]:
    """Return the 400 body that names `field` and says `error`."""
    return {
        "error": f"invalid request: {field}: {error}",
        "detail": [{"field": field, "error": error}],
    }
