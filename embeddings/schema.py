"""OpenAPI descriptions of the items and search API's answers (drf-spectacular), kept out of the views.

Request bodies are declared once in `embeddings.bodies`, which validates them too.
"""

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, inline_serializer
from rest_framework import serializers

from analytics.queries.series import AGGS
from analytics.series_params import format_width
from embeddings.validation import (
    K_DEFAULT,
    K_MAX,
    RANGE_DEFAULT,
    RANGE_MAX,
    RANGE_MIN,
    TREND_AGG_DEFAULT,
)

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
        "external_id": serializers.CharField(),
        "title": serializers.CharField(),
        "text": serializers.CharField(),
        "attributes": serializers.DictField(),
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
    OpenApiParameter(
        "range",
        str,
        default=RANGE_DEFAULT,
        description=f"trend range: {format_width(RANGE_MIN)} to {format_width(RANGE_MAX)}",
    ),
    OpenApiParameter(
        "agg",
        str,
        default=TREND_AGG_DEFAULT,
        # Empty (a form's blank choice) means the default.
        enum=["", *AGGS],
        description="checked even without `trend`",
    ),
]
SIMILAR_PARAMETERS = [
    OpenApiParameter("k", int, default=K_DEFAULT, description=f"1 to {K_MAX}"),
    OpenApiParameter(
        "where", str, many=True, description="key:value, key:a,b or key:in(a,b); repeat for AND"
    ),
    *_TREND_PARAMETERS,
    OpenApiParameter("project", str, description="project slug (session users)"),
]

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
