"""OpenAPI descriptions of the items and search API (drf-spectacular), kept out of the views."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, inline_serializer
from rest_framework import serializers

ERROR = inline_serializer(
    "ItemsError",
    {
        "error": serializers.CharField(),
        "detail": serializers.ListField(child=serializers.DictField()),
    },
)


def with_errors(success: dict[int, Any], *codes: int) -> dict[int, Any]:
    """Return the responses `success` plus the platform's error body for each status in `codes`."""
    return {**success, **dict.fromkeys(codes, ERROR)}


_ITEM_FIELDS: dict[str, Any] = {
    "external_id": serializers.CharField(max_length=200),
    "title": serializers.CharField(max_length=500),
    "text": serializers.CharField(required=False, max_length=20_000),
    "attributes": serializers.DictField(required=False),
}
# The upsert body as the validation reads it (embeddings.validation.clean_item), so that
# clients and schema-driven tests know exactly what passes: ids without control characters
# or edge whitespace (integers read as their decimal string), titles not blank, flat
# attributes of scalars or lists of scalars (null means none).
_NO_CONTROL = r"\x00-\x1f\x7f"
_TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_SCALAR: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "maxLength": 1000, "pattern": r"^[^\x00]*$"},
        {"type": "number"},
        {"type": "boolean"},
    ],
    "nullable": True,
}
_ITEM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "external_id": {
            "oneOf": [
                {
                    "type": "string",
                    "maxLength": 200,
                    "pattern": f"^[^{_NO_CONTROL}\\s]([^{_NO_CONTROL}]*[^{_NO_CONTROL}\\s])?$",
                },
                {"type": "integer"},
            ]
        },
        "title": {
            "type": "string",
            "maxLength": 500,
            "pattern": f"^[^{_TEXT_CONTROL}]*[^{_TEXT_CONTROL}\\s][^{_TEXT_CONTROL}]*$",
        },
        "text": {"type": "string", "maxLength": 20_000, "pattern": f"^[^{_TEXT_CONTROL}]*$"},
        "attributes": {
            "type": "object",
            "nullable": True,
            "maxProperties": 64,
            "additionalProperties": {
                "oneOf": [_SCALAR, {"type": "array", "maxItems": 100, "items": _SCALAR}]
            },
        },
    },
    "required": ["external_id", "title"],
    "additionalProperties": False,
}
_ITEMS: dict[str, Any] = {"type": "array", "minItems": 1, "items": _ITEM}
# By media type: drf-spectacular takes a raw schema only there.
ITEM_BATCH: dict[str, Any] = {
    "application/json": {
        "oneOf": [
            _ITEMS,
            {
                "type": "object",
                "properties": {"items": _ITEMS},
                "required": ["items"],
                "additionalProperties": False,
            },
        ]
    }
}
UPSERT_DOC = """Create or replace items by `external_id` (a batch of up to ITEMS_MAX_PER_REQUEST).

The body is `{"items": [...]}` or a bare array. An upsert replaces the whole item: omitted
`text` becomes "" and omitted `attributes` {}. Attributes are a flat object of strings,
numbers, booleans, nulls or lists of those. Any invalid item refuses the whole batch with
400 and `detail: [{"index": i, "error": "field: why"}]`; nothing is written. Items whose
title or text changed are embedded by a worker after the commit."""

UPSERT_RECEIPT = inline_serializer(
    "ItemUpsertReceipt",
    {
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "embedding_queued": serializers.IntegerField(),
        "items": serializers.ListField(
            child=inline_serializer(
                "ItemUpsertStatus",
                {
                    "external_id": serializers.CharField(),
                    "status": serializers.ChoiceField(["created", "updated", "unchanged"]),
                },
            )
        ),
    },
)

ITEM_LIST_DOC = """Items whose title or external id contains every word of `q` (case-insensitive),
titles starting with `q` first; without `q`, the first items by title. For item pickers.

Response: `{"items": [{"external_id", "title", "attributes", "embedded"}]}`; `embedded` is
false until the item's current text has an embedding (searching by it would answer 409)."""

ITEM_LIST = inline_serializer(
    "ItemList",
    {
        "items": serializers.ListField(
            child=inline_serializer(
                "ItemSummary",
                {
                    "external_id": serializers.CharField(),
                    "title": serializers.CharField(),
                    "attributes": serializers.DictField(),
                    "embedded": serializers.BooleanField(),
                },
            )
        )
    },
)

ITEM_DETAIL = inline_serializer(
    "ItemDetail",
    {
        **_ITEM_FIELDS,
        "content_hash": serializers.CharField(),
        "embedding": inline_serializer(
            "ItemEmbedding",
            {
                "status": serializers.ChoiceField(["current", "stale", "pending"]),
                "model": serializers.CharField(allow_null=True),
                "embedded_at": serializers.DateTimeField(allow_null=True),
            },
        ),
        "created_at": serializers.DateTimeField(),
        "updated_at": serializers.DateTimeField(),
    },
)

SEARCH_RESULTS_DOC = """Results, best first:

```
{"results": [{"external_id": "sku-0042", "title": "…", "score": 0.83,
              "attributes": {"category": "books"}, "trend": [3.0, 0.0, …]}],
 "k": 10, "count": 1, "matched": 1, "model": "all-MiniLM-L6-v2",
 "trend": {"metric": "shop.product_views", "agg": "sum", "bucket": "6h",
           "start": "…", "end": "…", "times": [epoch ms, …]}}
```

`score` is the cosine similarity to the query (1: same direction). `matched` is null when
k results came back; otherwise it is how many items passed the filter (so fewer than k
exist). `trend` (top level and per result) appears only when `trend=<metric>` is asked:
per result it lists the metric's `agg` in each bucket of `times` (0 for sum and count
where nothing happened, null for other aggregates), or is null when events never named
that item with the metric. Example items are never among the results.

Filters: `where=key:value` in a query string (repeat for AND; `key:a,b` or
`key:in(a,b)` for any of the values; a value reading as a number or boolean matches that
too), `"where": {"key": value | [values]}` in JSON (exact values). A value matches an
attribute equal to it or a list attribute holding it."""

SEARCH_RESULTS = inline_serializer(
    "SearchResults",
    {
        "results": serializers.ListField(
            child=inline_serializer(
                "SearchResult",
                {
                    "external_id": serializers.CharField(),
                    "title": serializers.CharField(),
                    "score": serializers.FloatField(),
                    "attributes": serializers.DictField(),
                    "trend": serializers.ListField(
                        child=serializers.FloatField(allow_null=True),
                        required=False,
                        allow_null=True,
                    ),
                },
            )
        ),
        "k": serializers.IntegerField(),
        "count": serializers.IntegerField(),
        "matched": serializers.IntegerField(allow_null=True),
        "model": serializers.CharField(),
        "trend": inline_serializer(
            "SearchTrend",
            {
                "metric": serializers.CharField(),
                "agg": serializers.CharField(),
                "bucket": serializers.CharField(),
                "start": serializers.DateTimeField(),
                "end": serializers.DateTimeField(),
                "times": serializers.ListField(child=serializers.IntegerField()),
            },
            required=False,
        ),
    },
)

_TREND_PARAMETERS = [
    OpenApiParameter("trend", str, description="metric whose trend each result carries"),
    OpenApiParameter("range", str, default="7d", description="trend range: 1h to 366d"),
    OpenApiParameter(
        "agg",
        str,
        default="sum",
        # Empty (a form's blank choice) means the default.
        enum=["", "avg", "sum", "count", "min", "max"],
        description="checked even without `trend`",
    ),
]
SIMILAR_PARAMETERS = [
    OpenApiParameter("k", int, default=10, description="1 to 100"),
    OpenApiParameter(
        "where", str, many=True, description="key:value, key:a,b or key:in(a,b); repeat for AND"
    ),
    *_TREND_PARAMETERS,
    OpenApiParameter("project", str, description="project slug (session users)"),
]


def _example() -> serializers.JSONField:
    return serializers.JSONField(help_text='an external id, or {"text": "a free example"}')


SEARCH_REQUEST = inline_serializer(
    "SearchRequest",
    {
        "like": serializers.ListField(child=_example(), min_length=1, max_length=20),
        "unlike": serializers.ListField(child=_example(), required=False, max_length=20),
        "k": serializers.IntegerField(required=False, min_value=1, max_value=100),
        "where": serializers.DictField(required=False),
        "trend": serializers.CharField(required=False),
        "range": serializers.CharField(required=False),
        "agg": serializers.CharField(required=False),
    },
)
SEARCH_EXAMPLES = [
    OpenApiExample(
        "like two, unlike one, books only",
        value={
            "like": ["sku-0001", {"text": "a cosy mystery set in a bookshop"}],
            "unlike": ["sku-0003"],
            "k": 10,
            "where": {"category": "books"},
            "trend": "shop.product_views",
            "range": "7d",
        },
        request_only=True,
    )
]
