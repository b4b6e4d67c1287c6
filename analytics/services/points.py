"""Store clean points: resolve series in bulk, then binary COPY into the points hypertable.

This is the one write path of metric data; HTTP ingestion, bulk import and the demo
seed all come through `ingest_points`. The ORM is never used per event.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
import psycopg
from django.db import connection, transaction
from psycopg.types.json import Jsonb

from analytics.locks import advisory_xact_lock

logger = logging.getLogger(__name__)

# A series is identified by (metric, sorted tag pairs, item).
Tags = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Tags, str | None]


class CleanPoint(NamedTuple):
    """A validated point, ready to store."""

    series: SeriesKey
    time: datetime
    value: float
    event_id: str | None


@dataclass(frozen=True)
class IngestResult:
    """What happened to a batch: stored points, duplicates, and refused new series."""

    accepted: int
    duplicates: int
    refused_series: frozenset[SeriesKey] = field(default_factory=frozenset)


class SeriesLimitExceeded(Exception):
    """Storing the batch would take the project past its series cardinality limit."""

    def __init__(self, *, limit: int, existing: int, new: int) -> None:
        self.limit, self.existing, self.new = limit, existing, new
        super().__init__(
            f"series cardinality limit reached: the project has {existing} series, the batch "
            f"adds {new} new ones, and the limit is {limit}"
        )


class SeriesCache:
    """An in-process LRU map of (project, series key) -> series id.

    Only committed series enter it (see `_remember_after_commit`), so a rolled-back
    batch can never leave an id behind that points at nothing.
    """

    def __init__(self, max_size: int = 200_000) -> None:
        self._ids: OrderedDict[tuple[int, SeriesKey], int] = OrderedDict()
        self._lock = threading.Lock()
        self.max_size = max_size

    def get_many(self, project_id: int, keys: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
        found: dict[SeriesKey, int] = {}
        with self._lock:
            for key in keys:
                series_id = self._ids.get((project_id, key))
                if series_id is not None:
                    self._ids.move_to_end((project_id, key))
                    found[key] = series_id
        return found

    def put_many(self, project_id: int, ids: dict[SeriesKey, int]) -> None:
        with self._lock:
            for key, series_id in ids.items():
                self._ids[(project_id, key)] = series_id
            while len(self._ids) > self.max_size:
                self._ids.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


series_cache = SeriesCache()

_SELECT_SERIES = """
    SELECT s.id, s.metric, s.tags::text, s.item
    FROM analytics_series s
    JOIN unnest(%s::text[], %s::jsonb[], %s::text[]) AS k(metric, tags, item)
      ON s.metric = k.metric AND s.tags = k.tags AND s.item IS NOT DISTINCT FROM k.item
    WHERE s.project_id = %s
"""
_INSERT_SERIES = """
    INSERT INTO analytics_series (project_id, metric, tags, item, created_at)
    SELECT %s, k.metric, k.tags, k.item, now()
    FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS k(metric, tags, item)
    ON CONFLICT DO NOTHING
"""


def _key_columns(keys: Sequence[SeriesKey]) -> tuple[list[str], list[Jsonb], list[str | None]]:
    return (
        [metric for metric, _, _ in keys],
        [Jsonb(dict(tags)) for _, tags, _ in keys],
        [item for _, _, item in keys],
    )


# Django loads jsonb as text on its connections, so tags are read as text and decoded.
def _select_series(
    cursor: psycopg.Cursor[Any], project_id: int, keys: Sequence[SeriesKey]
) -> dict[SeriesKey, int]:
    metrics, tags, items = _key_columns(keys)
    cursor.execute(_SELECT_SERIES, [metrics, tags, items, project_id])
    return {
        (metric, tuple(sorted(orjson.loads(row_tags).items())), item): series_id
        for series_id, metric, row_tags, item in cursor.fetchall()
    }


def _remember_after_commit(project_id: int, ids: dict[SeriesKey, int]) -> None:
    transaction.on_commit(lambda: series_cache.put_many(project_id, ids))


@dataclass(frozen=True)
class ResolvedSeries:
    """The series ids of a batch's keys, and the new keys refused over the project's limit."""

    ids: dict[SeriesKey, int]
    refused: frozenset[SeriesKey] = frozenset()


def resolve_series(
    cursor: psycopg.Cursor[Any],
    *,
    project_id: int,
    keys: set[SeriesKey],
    series_limit: int,
    refuse_over_limit: bool,
) -> ResolvedSeries:
    """Return ids for `keys`, creating missing series within the project's limit.

    New series beyond the limit raise SeriesLimitExceeded, or, with
    `refuse_over_limit`, are returned as refused so the caller can reject their points.
    Must run inside the caller's transaction.
    """
    ids = series_cache.get_many(project_id, keys)
    missing = [key for key in keys if key not in ids]
    if not missing:
        return ResolvedSeries(ids)
    found = _select_series(cursor, project_id, missing)
    ids.update(found)
    missing = [key for key in missing if key not in found]
    if not missing:
        _remember_after_commit(project_id, found)
        return ResolvedSeries(ids)
    # Creating series is rare; serialise it per project so the limit holds under
    # concurrent batches (the lock ends with the transaction).
    advisory_xact_lock(cursor, "series-create", project_id)
    cursor.execute("SELECT count(*) FROM analytics_series WHERE project_id = %s", [project_id])
    row = cursor.fetchone()
    existing = int(row[0]) if row else 0
    room = max(series_limit - existing, 0)
    refused: frozenset[SeriesKey] = frozenset()
    if len(missing) > room:
        # Another batch may have created some of them meanwhile: those are not new.
        created_meanwhile = _select_series(cursor, project_id, missing)
        ids.update(created_meanwhile)
        found.update(created_meanwhile)
        missing = sorted(key for key in missing if key not in created_meanwhile)
        if len(missing) > room:
            if not refuse_over_limit:
                raise SeriesLimitExceeded(limit=series_limit, existing=existing, new=len(missing))
            refused = frozenset(missing[room:])
            missing = missing[:room]
    if missing:
        metrics, tags, items = _key_columns(missing)
        cursor.execute(_INSERT_SERIES, [project_id, metrics, tags, items])
        created = _select_series(cursor, project_id, missing)
        ids.update(created)
        found.update(created)
    _remember_after_commit(project_id, found)
    return ResolvedSeries(ids, refused)


_STAGING_DDL = """
    CREATE TEMP TABLE IF NOT EXISTS points_staging (
        time timestamptz NOT NULL, series_id bigint NOT NULL,
        value double precision NOT NULL, event_id text
    ) ON COMMIT DELETE ROWS
"""
_COPY_TYPES = ["timestamptz", "int8", "float8", "text"]


def _copy_rows(
    cursor: psycopg.Cursor[Any], table: str, rows: Iterable[tuple[datetime, int, float, str | None]]
) -> None:
    try:
        with cursor.copy(
            f"COPY {table} (time, series_id, value, event_id) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_COPY_TYPES)
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        if not cursor.connection.broken or isinstance(exc, psycopg.OperationalError):
            raise
        # Through PgBouncer, a backend terminated mid-COPY answers the COPY with two
        # errors (the server's FATAL, then PgBouncer's "server conn crashed?"), which
        # psycopg reports as ProgrammingError("COPY cannot be mixed with other
        # operations"). The connection, and its transaction, are gone: nothing was
        # stored and a retry may succeed, which is what OperationalError (503) says.
        raise psycopg.OperationalError(f"the connection was lost during COPY: {exc}") from exc


def _insert_deduplicated(
    cursor: psycopg.Cursor[Any], rows: list[tuple[datetime, int, float, str | None]]
) -> int:
    """Insert rows that carry event ids, skipping those already stored; return how many went in.

    Retries are rare, so the rows are first COPied straight into the hypertable inside a
    savepoint: the unique index refuses the COPY if any row is a duplicate. Only then
    are they staged and inserted with ON CONFLICT DO NOTHING, which costs PostgreSQL
    about twice the work.
    """
    try:
        with transaction.atomic():
            _copy_rows(cursor, "points", rows)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    cursor.execute(_STAGING_DDL)
    _copy_rows(cursor, "points_staging", rows)
    cursor.execute(
        "INSERT INTO points (time, series_id, value, event_id)"
        " SELECT time, series_id, value, event_id FROM points_staging"
        " ON CONFLICT DO NOTHING"
    )
    inserted = cursor.rowcount
    cursor.execute("TRUNCATE points_staging")
    return inserted


def ingest_points(
    *,
    project_id: int,
    points: Sequence[CleanPoint],
    series_limit: int,
    refuse_over_limit: bool = False,
) -> IngestResult:
    """Store `points` for `project_id` in one transaction and return the counts.

    Points without an event id go straight in by binary COPY. Points with one are
    deduplicated (see `_insert_deduplicated`), so a retried event (same series, time
    and id, in this batch or an earlier one) is counted as a duplicate and stored once. Points of refused series (see `resolve_series`) are
    skipped and reported in `refused_series`.
    """
    started = time.perf_counter()
    if not points:
        return IngestResult(accepted=0, duplicates=0)
    with transaction.atomic():
        connection.ensure_connection()
        raw: psycopg.Connection[Any] = connection.connection
        with raw.cursor() as cursor:
            resolved = resolve_series(
                cursor,
                project_id=project_id,
                keys={point.series for point in points},
                series_limit=series_limit,
                refuse_over_limit=refuse_over_limit,
            )
            direct: list[tuple[datetime, int, float, str | None]] = []
            staged: list[tuple[datetime, int, float, str | None]] = []
            for point in points:
                series_id = resolved.ids.get(point.series)
                if series_id is None:
                    continue
                row = (point.time, series_id, point.value, point.event_id)
                (direct if point.event_id is None else staged).append(row)
            if direct:
                _copy_rows(cursor, "points", direct)
            inserted = _insert_deduplicated(cursor, staged) if staged else 0
    result = IngestResult(
        accepted=len(direct) + inserted,
        duplicates=len(staged) - inserted,
        refused_series=resolved.refused,
    )
    logger.info(
        "ingested project=%s points=%d accepted=%d duplicates=%d refused_series=%d in %.1f ms",
        project_id,
        len(points),
        result.accepted,
        result.duplicates,
        len(resolved.refused),
        (time.perf_counter() - started) * 1000,
    )
    return result
