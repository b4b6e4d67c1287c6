"""The series catalog: metrics, tag keys of a metric, values of a tag (dashboard variables)."""

from dataclasses import dataclass

from analytics.db.replicas import read_connection
from analytics.models import Series
from analytics.queries.like import contains_pattern


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    series: int


def metric_names(*, project_id: int, search: str = "", limit: int = 100) -> list[CatalogEntry]:
    """Return the project's metrics (containing `search`), each with its series count."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            """SELECT metric, count(*) FROM analytics_series
               WHERE project_id = %s AND metric ILIKE %s
               GROUP BY metric ORDER BY metric LIMIT %s""",
            [project_id, contains_pattern(search), limit],
        )
        return [CatalogEntry(name, count) for name, count in cursor.fetchall()]


def tag_keys(*, project_id: int, metric: str) -> list[CatalogEntry]:
    """Return the tag keys used by `metric`'s series, each with how many series carry it."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            """SELECT key, count(*) FROM analytics_series, jsonb_object_keys(tags) AS key
               WHERE project_id = %s AND metric = %s GROUP BY key ORDER BY key""",
            [project_id, metric],
        )
        return [CatalogEntry(name, count) for name, count in cursor.fetchall()]


def tag_values(
    *, project_id: int, metric: str, key: str, search: str = "", limit: int = 100
) -> list[CatalogEntry]:
    """Return the values of tag `key` on `metric` (containing `search`), with series counts."""
    with read_connection().cursor() as cursor:
        cursor.execute(
            """SELECT tags ->> %s AS value, count(*) FROM analytics_series
               WHERE project_id = %s AND metric = %s AND tags ? %s AND tags ->> %s ILIKE %s
               GROUP BY value ORDER BY value LIMIT %s""",
            [key, project_id, metric, key, key, contains_pattern(search), limit],
        )
        return [CatalogEntry(name, count) for name, count in cursor.fetchall()]


def has_metric(*, project_id: int, metric: str) -> bool:
    return Series.objects.filter(project_id=project_id, metric=metric).exists()
