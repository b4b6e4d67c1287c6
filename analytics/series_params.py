"""Parse and check the query parameters of the series API, naming the one at fault."""

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.http import QueryDict

from analytics.models import METRIC_MAX
from analytics.queries.series import (
    AGGS,
    FILLS,
    SeriesQuery,
    TagFilter,
    align_down,
    align_up,
    natural_bucket,
)
from analytics.refusals import invalid as _invalid
from analytics.validation import refuse_repeated, without_nul

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
RELATIVE_RE = re.compile(r"now(?:\s*-\s*([0-9]{1,12})([smhdw]))?")
BUCKET_RE = re.compile(r"([0-9]+)([smhdw])")
DIGITS_RE = re.compile(r"[0-9]{1,6}")
AUTO_POINTS = 300
# Far enough from datetime's limits that bucket alignment never overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
MAX_GROUPS = 50


def parse_time(value: str, field: str, now: datetime) -> datetime:
    """Read ISO 8601 (naive is UTC) or `now`, `now-15m`, `now-24h`, `now-7d`, `now-2w`."""
    text = value.strip()
    relative = RELATIVE_RE.fullmatch(text)
    if relative:
        amount, unit = relative.groups()
        try:
            return now - timedelta(seconds=int(amount) * UNITS[unit]) if amount else now
        except OverflowError as exc:
            raise _invalid(field, f"{value[:64]} reaches before year 1") from exc
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _invalid(field, f"{value[:64]!r} is not ISO 8601 or now-<n><s|m|h|d|w>") from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise _invalid(field, f"{value[:64]} is outside the years 1970 to 9000")
    return moment


def format_width(width: timedelta) -> str:
    seconds = int(width.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_bucket(value: str, start: datetime, end: datetime) -> timedelta:
    """Return the bucket width: `auto` (about 300 points) or a multiple of 1 minute."""
    if value == "auto":
        return natural_bucket(end - start, points=AUTO_POINTS)
    match = BUCKET_RE.fullmatch(value.strip())
    if not match:
        raise _invalid(
            "bucket", f"{value[:32]!r} must be 'auto' or <n><m|h|d|w> such as 5m, 6h, 7d"
        )
    amount, unit = int(match.group(1)), match.group(2)
    seconds = amount * UNITS[unit]
    if seconds == 0 or seconds % 60:
        raise _invalid(
            "bucket",
            f"{value} is not a multiple of a rollup tier (1m, 1h, 1d); use e.g. 1m, 5m, 1h",
        )
    if seconds > 366 * 86400:
        raise _invalid("bucket", f"{value} is longer than a year")
    return timedelta(seconds=seconds)


def parse_filter(value: str) -> TagFilter:
    """Read `key:value`, `key!=value`, `key:in(a,b)` or `key!=in(a,b)`."""
    without_nul("where", value)
    colon, bang = value.find(":"), value.find("!=")
    if bang != -1 and (colon == -1 or bang < colon):
        key, raw, negate = value[:bang], value[bang + 2 :], True
    elif colon != -1:
        key, raw, negate = value[:colon], value[colon + 1 :], False
    else:
        raise _invalid("where", f"{value[:64]!r} must be key:value, key!=value or key:in(a,b)")
    key = key.strip()
    if not key:
        raise _invalid("where", f"{value[:64]!r} has no tag key")
    if raw.startswith("in(") and raw.endswith(")"):
        values = tuple(v.strip() for v in raw[3:-1].split(",") if v.strip())
        if not values:
            raise _invalid("where", f"{value[:64]!r} lists no values")
    else:
        values = (raw,)
    return TagFilter(key=key, values=values, negate=negate)


def _choice(params: QueryDict, field: str, allowed: tuple[str, ...], default: str) -> str:
    value = params.get(field, default)
    if value not in allowed:
        raise _invalid(field, f"{value[:32]!r} is not one of {', '.join(allowed)}")
    return value


def parse_series_query(params: QueryDict, *, project_id: int, now: datetime) -> SeriesQuery:
    """Build a SeriesQuery from request parameters, or raise a 400 naming the parameter."""
    refuse_repeated(params, repeatable=frozenset({"where"}))
    metric = params.get("metric", "").strip()
    if not metric:
        raise _invalid("metric", "required")
    if len(metric) > METRIC_MAX or any(ord(c) < 32 for c in metric):
        raise _invalid("metric", f"must be 1 to {METRIC_MAX} printable characters")
    agg = _choice(params, "agg", AGGS, "avg")
    fill = _choice(params, "fill", FILLS, "none")
    start = parse_time(params.get("start", "now-24h"), "start", now)
    end = parse_time(params.get("end", "now"), "end", now)
    if end <= start:
        raise _invalid("end", "must be after start")
    if start < EARLIEST:
        raise _invalid("start", "is before 1970")
    bucket = parse_bucket(params.get("bucket", "auto"), start, end)
    # Count the buckets actually returned: the range widens to whole buckets.
    points = (align_up(end, bucket) - align_down(start, bucket)) / bucket
    if points > settings.SERIES_MAX_POINTS:
        raise _invalid(
            "bucket",
            f"{format_width(bucket)} over this range gives {int(points)} points, more than the "
            f"limit of {settings.SERIES_MAX_POINTS}; use a wider bucket or 'auto'",
        )
    compare = params.get("compare")
    if compare not in (None, "", "previous_period"):
        raise _invalid("compare", f"{compare[:32]!r} is not 'previous_period'")
    limit_raw = params.get("limit", "10")
    if not DIGITS_RE.fullmatch(limit_raw) or not 1 <= int(limit_raw) <= MAX_GROUPS:
        raise _invalid("limit", f"must be an integer from 1 to {MAX_GROUPS}")
    group_by = without_nul("group_by", params.get("group_by", "")) or None
    return SeriesQuery(
        project_id=project_id,
        metric=metric,
        agg=agg,  # type: ignore[arg-type]
        start=start,
        end=end,
        bucket=bucket,
        filters=tuple(parse_filter(value) for value in params.getlist("where")),
        group_by=group_by,
        limit=int(limit_raw),
        fill=fill,  # type: ignore[arg-type]
        compare=compare == "previous_period",
    )
