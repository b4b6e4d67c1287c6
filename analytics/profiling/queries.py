"""Reads of silk's records: the SQL statements that cost the most, grouped by fingerprint."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from django.db.models import Count, F, Max, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from silk.models import Request, SQLQuery  # type: ignore[import-untyped]

from analytics.profiling.statements import fingerprint

RankBy = Literal["total", "mean", "max", "count"]
RANKINGS: tuple[RankBy, ...] = ("total", "mean", "max", "count")


@dataclass
class SlowStatement:
    """One fingerprint's totals, where it came from, and its slowest run."""

    fingerprint: str
    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    sources: Counter[str] = field(default_factory=Counter)
    example: str = ""

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.count if self.count else 0.0


@dataclass(frozen=True)
class SlowStatements:
    statements: list[SlowStatement]
    recorded_statements: int
    recorded_requests: int


def slow_statements(
    *, by: RankBy = "total", limit: int = 10, since: datetime | None = None
) -> SlowStatements:
    """Return the `limit` costliest statement fingerprints ranked `by` total, mean or max time, or count.

    The database groups by exact text and source (the request's silk name, else its path);
    fingerprints merge those groups here, one pass, keeping only the slowest text of each.
    """
    if by not in RANKINGS:
        raise ValueError(f"by must be one of {', '.join(RANKINGS)}, not {by!r}")
    queries = SQLQuery.objects.filter(time_taken__isnull=False, request__isnull=False)
    requests = Request.objects.all()
    if since is not None:
        queries = queries.filter(request__start_time__gte=since)
        requests = requests.filter(start_time__gte=since)
    rows = (
        queries.annotate(
            source=Coalesce(NullIf(F("request__view_name"), Value("")), F("request__path"))
        )
        .values("query", "source")
        .annotate(n=Count("id"), total=Sum("time_taken"), worst=Max("time_taken"))
        .values_list("query", "source", "n", "total", "worst")
        .order_by()
    )
    groups: dict[str, SlowStatement] = {}
    recorded = 0
    # Rows come grouped by exact text, so each text is fingerprinted about once; only the
    # groups (one per fingerprint) stay in memory.
    for query, source, n, total, worst in rows.iterator(chunk_size=2000):
        key = fingerprint(query)
        group = groups.get(key)
        if group is None:
            group = groups[key] = SlowStatement(fingerprint=key)
        if worst >= group.max_ms or not group.example:
            group.max_ms, group.example = worst, query
        group.count += n
        group.total_ms += total
        group.sources[source] += n
        recorded += n
    ranked = sorted(groups.values(), key=lambda g: _rank_value(g, by), reverse=True)
    return SlowStatements(
        statements=ranked[:limit], recorded_statements=recorded, recorded_requests=requests.count()
    )


def _rank_value(group: SlowStatement, by: RankBy) -> float:
    if by == "mean":
        return group.mean_ms
    if by == "max":
        return group.max_ms
    if by == "count":
        return float(group.count)
    return group.total_ms
