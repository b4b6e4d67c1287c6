"""Rules for what comes in over the items and search API, each error naming its field.

Every rule raises `Invalid("<field>: why")`. The request bodies that use them are
declared in `embeddings.bodies`; query strings are read here (`parse_similar_params`).
Identifiers follow the core's rules (`analytics.validation`: printable, bounded, no NUL
that PostgreSQL would refuse with a 500). Filters on attributes are
written `where=key:value` in query strings (repeatable: AND; `key:a,b` or `key:in(a,b)`:
OR) and `{"key": value | [values]}` in JSON bodies.
"""

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.http import QueryDict

from analytics.models import METRIC_MAX
from analytics.queries.series import AGGS
from analytics.refusals import invalid
from analytics.validation import CONTROL_RE, Invalid, refuse_repeated, required_text, type_name
from embeddings.models import EXTERNAL_ID_MAX

TEXT_MAX = 20_000
MAX_ATTRIBUTES = 64
ATTRIBUTE_KEY_MAX = 64
ATTRIBUTE_VALUE_MAX = 1000
ATTRIBUTE_LIST_MAX = 100
MAX_FILTERS = 16
MAX_FILTER_VALUES = 50
MAX_EXAMPLES = 20
QUERY_TEXT_MAX = 2000
K_MAX = 100
K_DEFAULT = 10
# Newlines and tabs belong in free text; the other control characters never do.
TEXT_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
RANGE_RE = re.compile(r"([0-9]{1,4})([mhdw])")
RANGE_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
RANGE_MIN = timedelta(hours=1)
RANGE_MAX = timedelta(days=366)
RANGE_DEFAULT = "7d"
TREND_AGG_DEFAULT = "sum"

Scalar = str | int | float | bool | None


def embedding_input(title: str, text: str) -> str:
    """Return exactly what the encoder reads for an item: its title, then its text."""
    return f"{title}\n\n{text}" if text else title


def content_hash(title: str, text: str) -> str:
    """Return the SHA-256 of the encoder's input: equal hashes need no new embedding."""
    return hashlib.sha256(embedding_input(title, text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ItemInput:
    """One valid item of an upsert request (omitted fields take their defaults)."""

    external_id: str
    title: str
    text: str
    attributes: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text)


@dataclass(frozen=True)
class AttributeFilter:
    """Items whose attribute `key` equals (or, for a list attribute, holds) one of `values`."""

    key: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Example:
    """A positive or negative example: an item of the project or a free text."""

    field: str  # where it came from in the request, e.g. "like[1]"
    external_id: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class TrendRequest:
    metric: str
    agg: str
    range: timedelta


@dataclass(frozen=True)
class SearchRequest:
    like: tuple[Example, ...]
    unlike: tuple[Example, ...]
    k: int
    where: tuple[AttributeFilter, ...]
    trend: TrendRequest | None


@dataclass(frozen=True)
class SimilarParams:
    """The query of GET /api/v1/items/<id>/similar."""

    k: int
    where: tuple[AttributeFilter, ...]
    trend: TrendRequest | None


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}")


def identifier(value: Any, field: str = "external_id") -> str:
    """Return a valid external id (integers are read as their decimal string, as events do)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return required_text(value, field, EXTERNAL_ID_MAX)


def free_text(value: Any, field: str, max_length: int, *, required: bool) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{field}: must be a string, not {type_name(value)}")
    if required and not value.strip():
        raise Invalid(f"{field}: must not be blank")
    if len(value) > max_length:
        raise Invalid(f"{field}: longer than {max_length} characters")
    if TEXT_CONTROL_RE.search(value):
        raise Invalid(f"{field}: contains a control character (only newlines and tabs may appear)")
    return value


def _scalar(value: Any, field: str) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise Invalid(f"{field}: must be a finite number")
        return value
    if isinstance(value, str):
        if len(value) > ATTRIBUTE_VALUE_MAX:
            raise Invalid(f"{field}: longer than {ATTRIBUTE_VALUE_MAX} characters")
        if "\x00" in value:
            raise Invalid(f"{field}: contains a NUL character")
        return value
    raise Invalid(f"{field}: must be a string, number, boolean or null, not {type_name(value)}")


def attribute_key(key: Any, field: str) -> str:
    if not isinstance(key, str) or not key:
        raise Invalid(f"{field}: attribute names must be non-empty strings")
    if len(key) > ATTRIBUTE_KEY_MAX:
        raise Invalid(f"{field}: name {key[:ATTRIBUTE_KEY_MAX]!r}… longer than {ATTRIBUTE_KEY_MAX}")
    if CONTROL_RE.search(key):
        raise Invalid(f"{field}: name {key!r} contains a control character")
    if ":" in key:
        # `where=key:value` filters split at the first colon.
        raise Invalid(f"{field}: name {key!r} must not contain ':'")
    return key


def attributes(value: Any, field: str = "attributes") -> dict[str, Any]:
    """Return a flat object of scalars or lists of scalars (what filters can match)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{field}: must be an object, not {type_name(value)}")
    if len(value) > MAX_ATTRIBUTES:
        raise Invalid(f"{field}: {len(value)} attributes, at most {MAX_ATTRIBUTES} allowed")
    clean: dict[str, Any] = {}
    for key, raw in value.items():
        name = attribute_key(key, field)
        if isinstance(raw, list):
            if len(raw) > ATTRIBUTE_LIST_MAX:
                raise Invalid(f"{field}.{name}: more than {ATTRIBUTE_LIST_MAX} values")
            clean[name] = [_scalar(v, f"{field}.{name}[{i}]") for i, v in enumerate(raw)]
        else:
            clean[name] = _scalar(raw, f"{field}.{name}")
    return clean


# --- filters ---------------------------------------------------------------------------


def _typed_alternatives(text: str) -> tuple[Scalar, ...]:
    """A query-string value matches as a string, and as a number or boolean when it reads as one."""
    alternatives: list[Scalar] = [text]
    if text in ("true", "false"):
        alternatives.append(text == "true")
    elif text == "null":
        alternatives.append(None)
    else:
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            alternatives.append(int(number) if number.is_integer() and "." not in text else number)
    return tuple(alternatives)


def _check_filter_count(count: int) -> None:
    if count > MAX_FILTERS:
        raise _invalid("where", f"{count} filters, at most {MAX_FILTERS} allowed")


def parse_where_params(values: list[str]) -> tuple[AttributeFilter, ...]:
    """Read repeated `where=key:value`, `key:a,b` or `key:in(a,b)` query parameters."""
    _check_filter_count(len(values))
    filters = []
    for raw in values:
        key, colon, rest = raw.partition(":")
        if not colon:
            raise _invalid("where", f"{raw[:64]!r} must be key:value (or key:v1,v2 for either)")
        key = attribute_key(key.strip(), "where")
        if rest.startswith("in(") and rest.endswith(")"):
            rest = rest[3:-1]
        texts = [part.strip() for part in rest.split(",")]
        if not rest.strip() or any(not part for part in texts):
            raise _invalid("where", f"{raw[:64]!r} has an empty value")
        if len(texts) > MAX_FILTER_VALUES:
            raise _invalid("where", f"{key}: more than {MAX_FILTER_VALUES} values")
        for text in texts:
            if len(text) > ATTRIBUTE_VALUE_MAX or "\x00" in text:
                raise _invalid("where", f"{key}: a value is too long or holds a NUL character")
        values_ = tuple(v for text in texts for v in _typed_alternatives(text))
        filters.append(AttributeFilter(key=key, values=values_))
    return tuple(filters)


def parse_where_json(value: Any) -> tuple[AttributeFilter, ...]:
    """Read `{"key": value | [values]}`; values are matched exactly, a list means any of them."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise _invalid("where", f"must be an object of attribute values, not {type_name(value)}")
    _check_filter_count(len(value))
    filters = []
    for key, raw in value.items():
        name = attribute_key(key, "where")
        listed = raw if isinstance(raw, list) else [raw]
        if not listed:
            raise Invalid(f"where.{name}: an empty list matches nothing")
        if len(listed) > MAX_FILTER_VALUES:
            raise Invalid(f"where.{name}: more than {MAX_FILTER_VALUES} values")
        values = tuple(_scalar(v, f"where.{name}") for v in listed)
        filters.append(AttributeFilter(key=name, values=values))
    return tuple(filters)


# --- k and trends ----------------------------------------------------------------------


def parse_k(value: Any) -> int:
    if value is None:
        return K_DEFAULT
    if isinstance(value, str) and value.isdigit() and len(value) <= 4:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= K_MAX:
        raise _invalid("k", f"must be an integer from 1 to {K_MAX}")
    return value


def parse_trend(metric: Any, range_: Any, agg: Any) -> TrendRequest | None:
    """Return the trend to attach to each result, or None when no metric is named.

    `range` and `agg` are checked even without a metric: a wrong one is a mistake worth
    a 400, never silently ignored.
    """
    range_ = RANGE_DEFAULT if range_ in (None, "") else range_
    match = RANGE_RE.fullmatch(range_) if isinstance(range_, str) else None
    span = timedelta(seconds=int(match.group(1)) * RANGE_UNITS[match.group(2)]) if match else None
    if span is None or not RANGE_MIN <= span <= RANGE_MAX:
        raise _invalid("range", "must be <n><m|h|d|w> from 1h to 366d, such as 24h or 7d")
    agg = TREND_AGG_DEFAULT if agg in (None, "") else agg
    if agg not in AGGS:
        raise _invalid("agg", f"must be one of {', '.join(AGGS)}")
    if metric in (None, ""):
        return None
    if not isinstance(metric, str) or len(metric) > METRIC_MAX or CONTROL_RE.search(metric):
        raise _invalid("trend", f"must be a metric name of 1 to {METRIC_MAX} printable characters")
    return TrendRequest(metric=metric, agg=agg, range=span)


def parse_similar_params(params: QueryDict) -> SimilarParams:
    """Read the query of GET …/similar, or raise a 400 naming the parameter at fault."""
    refuse_repeated(params, repeatable=frozenset({"where"}))
    try:
        return SimilarParams(
            k=parse_k(params.get("k")),
            where=parse_where_params(params.getlist("where")),
            trend=parse_trend(params.get("trend"), params.get("range"), params.get("agg")),
        )
    except Invalid as exc:
        field, _, reason = str(exc).partition(": ")
        raise invalid(field, reason) from exc


# --- search body -----------------------------------------------------------------------


def examples(value: Any, field: str, *, required: bool) -> tuple[Example, ...]:
    """Read item ids or `{"text": ...}` objects; `required`: at least one."""
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise _invalid(field, 'must be a non-empty array of item ids or {"text": ...} objects')
    if len(value) > MAX_EXAMPLES:
        raise _invalid(field, f"{len(value)} examples, at most {MAX_EXAMPLES} allowed")
    found: list[Example] = []
    for index, entry in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(entry, dict):
            if set(entry) != {"text"}:
                raise Invalid(f'{where}: an object example must be exactly {{"text": ...}}')
            text = free_text(entry["text"], f"{where}.text", QUERY_TEXT_MAX, required=True)
            found.append(Example(field=where, text=text))
        else:
            found.append(Example(field=where, external_id=identifier(entry, where)))
    return tuple(found)
