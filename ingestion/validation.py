"""Rules every incoming event obeys, whatever its wire format.

Each check raises `Invalid` with a message that starts with the field at fault, so a
client reading `{"index": 3, "error": "tags.region: ..."}` knows exactly what to fix.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.models import METRIC_MAX, SERIES_ITEM_MAX
from analytics.services.points import CleanPoint, Tags
from analytics.validation import Invalid, required_text, type_name

TAG_KEY_MAX = 64
TAG_VALUE_MAX = 200
EVENT_ID_MAX = 200
MAX_TAGS = 32

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class TimeWindow:
    """The times an event may carry: not before `earliest`, not after `latest`."""

    now: datetime
    earliest: datetime
    latest: datetime
    retention_days: int
    max_future_seconds: int

    @classmethod
    def around(cls, now: datetime, *, retention_days: int, max_future_seconds: int) -> "TimeWindow":
        return cls(
            now=now,
            earliest=now - timedelta(days=retention_days),
            latest=now + timedelta(seconds=max_future_seconds),
            retention_days=retention_days,
            max_future_seconds=max_future_seconds,
        )

    def check(self, moment: datetime, field: str = "time") -> datetime:
        if moment > self.latest:
            raise Invalid(
                f"{field}: {moment.isoformat()} is more than {self.max_future_seconds} s in the future"
            )
        if moment < self.earliest:
            raise Invalid(
                f"{field}: {moment.isoformat()} is before the retention horizon "
                f"({self.retention_days} days ago)"
            )
        return moment


class _ValidCache:
    """Remember values that already passed validation: a batch repeats a few metrics
    and tag sets thousands of times, and checking each once keeps ingest fast."""

    def __init__(self, max_size: int = 50_000) -> None:
        self.max_size = max_size
        self.known: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self.known.get(key)

    def put(self, key: Any, value: Any) -> Any:
        if len(self.known) >= self.max_size:
            self.known.clear()
        self.known[key] = value
        return value


_metrics = _ValidCache()
_tag_sets = _ValidCache()


def metric_name(value: Any, field: str = "metric") -> str:
    if field == "metric" and isinstance(value, str) and _metrics.get(value):
        return value
    name = required_text(value, field, METRIC_MAX)
    if field == "metric":
        _metrics.put(name, True)
    return name


def tag_set(value: Any, field: str = "tags") -> Tags:
    """Return the tags as sorted (key, value) pairs, checking names and values."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise Invalid(f"{field}: must be an object of string values, not {type_name(value)}")
    try:
        cache_key = tuple(value.items())
        known: Tags | None = _tag_sets.get(cache_key)
    except TypeError:  # an unhashable value (list, object): the checks below name it
        cache_key, known = None, None
    if known is not None:
        return known
    if len(value) > MAX_TAGS:
        raise Invalid(f"{field}: {len(value)} tags, at most {MAX_TAGS} allowed")
    for key, tag_value in value.items():
        required_text(key, f"{field} key {key[:TAG_KEY_MAX]!r}", TAG_KEY_MAX)
        if ":" in key:
            # `where=key:value` filters split at the first colon.
            raise Invalid(f"{field}: key {key!r} must not contain ':'")
        required_text(tag_value, f"{field}.{key}", TAG_VALUE_MAX)
    tags: Tags = tuple(sorted(value.items()))
    return _tag_sets.put(cache_key, tags) if cache_key is not None else tags


def optional_text(value: Any, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return required_text(value, field, max_length)


def finite_number(value: Any, field: str = "value") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(f"{field}: must be a finite number, not {type_name(value)}")
    try:
        number = float(value)
    except OverflowError as exc:
        raise Invalid(f"{field}: {value} is too large for a double") from exc
    if not math.isfinite(number):
        raise Invalid(f"{field}: must be a finite number")
    return number


def epoch_to_datetime(number: float, field: str = "time") -> datetime:
    """Read epoch seconds, milliseconds, microseconds or nanoseconds by magnitude.

    Integers are converted exactly (a float cannot hold nanoseconds since 1970).
    """
    magnitude = abs(number)
    try:
        if isinstance(number, int):
            if magnitude < 1e11:
                microseconds = number * 1_000_000
            elif magnitude < 1e14:
                microseconds = number * 1000
            elif magnitude < 1e17:
                microseconds = number
            else:
                microseconds = number // 1000
            return EPOCH + timedelta(microseconds=microseconds)
        divisor = (
            1 if magnitude < 1e11 else 1e3 if magnitude < 1e14 else 1e6 if magnitude < 1e17 else 1e9
        )
        return EPOCH + timedelta(seconds=number / divisor)
    except OverflowError as exc:
        raise Invalid(f"{field}: {number} is out of range") from exc


def event_time(value: Any, window: TimeWindow, field: str = "time") -> datetime:
    """Return the event's time: ISO 8601 (naive means UTC) or epoch s/ms/us/ns."""
    if value is None:
        return window.now
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise Invalid(
                f"{field}: {value[:64]!r} is not an ISO 8601 time or epoch number"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return window.check(moment, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(
            f"{field}: must be an ISO 8601 string or an epoch number, not {type_name(value)}"
        )
    return window.check(epoch_to_datetime(value, field), field)


EVENT_FIELDS = frozenset({"metric", "value", "time", "tags", "item", "id"})


def clean_event(event: Any, window: TimeWindow) -> CleanPoint:
    """Validate one JSON event and return it as a point (`value` defaults to 1)."""
    if not isinstance(event, dict):
        raise Invalid(f"event: must be an object, not {type_name(event)}")
    if not EVENT_FIELDS.issuperset(event):
        unknown = event.keys() - EVENT_FIELDS
        raise Invalid(
            f"{sorted(unknown)[0]}: unknown field (allowed: {', '.join(sorted(EVENT_FIELDS))})"
        )
    if "metric" not in event:
        raise Invalid("metric: required")
    metric = metric_name(event["metric"])
    tags = tag_set(event.get("tags"))
    item = optional_text(event.get("item"), "item", SERIES_ITEM_MAX)
    value = finite_number(event["value"]) if "value" in event else 1.0
    moment = event_time(event.get("time"), window)
    event_id = optional_text(event.get("id"), "id", EVENT_ID_MAX)
    return CleanPoint((metric, tags, item), moment, value, event_id)
