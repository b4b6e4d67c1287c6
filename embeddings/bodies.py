"""The request bodies of the items and search API, declared once.

Each body is a DRF serializer whose fields carry their limits and the rule that checks
them (`embeddings.validation`): the same declaration validates a request and gives
drf-spectacular the OpenAPI schema, so the document cannot drift from what is accepted.
Every error message starts with the field at fault (`attributes.color[2]: …`).
"""

from typing import Any

from django.conf import settings
from drf_spectacular.drainage import set_override
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_serializer
from rest_framework import serializers
from rest_framework.fields import empty

from analytics.queries.series import AGGS
from analytics.refusals import Refusal, invalid
from analytics.validation import Invalid, type_name
from embeddings.models import EXTERNAL_ID_MAX, TITLE_MAX
from embeddings.validation import (
    ATTRIBUTE_LIST_MAX,
    ATTRIBUTE_VALUE_MAX,
    K_MAX,
    MAX_ATTRIBUTES,
    MAX_EXAMPLES,
    RANGE_DEFAULT,
    TEXT_MAX,
    TREND_AGG_DEFAULT,
    ItemInput,
    SearchRequest,
    attributes,
    examples,
    free_text,
    identifier,
    parse_k,
    parse_trend,
    parse_where_json,
)

MAX_ERRORS_SHOWN = 100

# Patterns the rules enforce, for the schema: no control characters (ids also no edge
# whitespace); free text may hold newlines and tabs.
_NO_CONTROL = r"\x00-\x1f\x7f"
_TEXT_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_SCALAR: dict[str, Any] = {
    "oneOf": [
        {"type": "string", "maxLength": ATTRIBUTE_VALUE_MAX, "pattern": r"^[^\x00]*$"},
        {"type": "number"},
        {"type": "boolean"},
    ],
    "nullable": True,
}


class RuleField(serializers.Field):  # type: ignore[type-arg]
    """A body field checked by a rule of `embeddings.validation`, with its OpenAPI schema.

    The rule raises Invalid("<field>: why"); the message becomes the field's error as is.
    `missing` is what an omitted optional field means (checked by the same rule).
    """

    def __init__(self, *, schema: dict[str, Any], missing: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.missing = missing
        set_override(self, "field", schema)

    def check(self, value: Any, field: str) -> Any:
        raise NotImplementedError

    def run_validation(self, data: Any = empty) -> Any:
        if data is empty:
            if self.required:
                raise serializers.ValidationError(f"{self.field_name}: required")
            data = self.missing
        try:
            return self.check(data, self.field_name or "")
        except Invalid as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Any) -> Any:
        return value


class ExternalIdField(RuleField):
    """An item id: printable, no edge whitespace; an integer reads as its decimal string."""

    def __init__(self, **kwargs: Any) -> None:
        pattern = f"^[^{_NO_CONTROL}\\s]([^{_NO_CONTROL}]*[^{_NO_CONTROL}\\s])?$"
        schema = {
            "oneOf": [
                {"type": "string", "maxLength": EXTERNAL_ID_MAX, "pattern": pattern},
                {"type": "integer"},
            ]
        }
        super().__init__(schema=schema, **kwargs)

    def check(self, value: Any, field: str) -> str:
        return identifier(value, field)


class FreeTextField(RuleField):
    """Text that may hold newlines and tabs, at most `max_length`; `blank` allows all-space."""

    def __init__(self, *, max_length: int, blank: bool, **kwargs: Any) -> None:
        pattern = (
            f"^[^{_TEXT_CONTROL}]*$"
            if blank
            else f"^[^{_TEXT_CONTROL}]*[^{_TEXT_CONTROL}\\s][^{_TEXT_CONTROL}]*$"
        )
        schema = {"type": "string", "maxLength": max_length, "pattern": pattern}
        super().__init__(schema=schema, **kwargs)
        self.max_length = max_length
        self.blank = blank

    def check(self, value: Any, field: str) -> str:
        return free_text(value, field, self.max_length, required=not self.blank)


class AttributesField(RuleField):
    """A flat object of scalars or lists of scalars (what filters can match); null is none."""

    def __init__(self, **kwargs: Any) -> None:
        schema = {
            "type": "object",
            "nullable": True,
            "maxProperties": MAX_ATTRIBUTES,
            "additionalProperties": {
                "oneOf": [
                    _SCALAR,
                    {"type": "array", "maxItems": ATTRIBUTE_LIST_MAX, "items": _SCALAR},
                ]
            },
        }
        super().__init__(schema=schema, **kwargs)

    def check(self, value: Any, field: str) -> dict[str, Any]:
        return attributes(value, field)


class _StrictBody(serializers.Serializer):  # type: ignore[type-arg]
    """A JSON object whose unknown fields are refused: a typo would otherwise be dropped."""

    subject = "body"

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                f"{self.subject}: must be {'a JSON object' if self.subject == 'body' else 'an object'}"
                f", not {type_name(data)}"
            )
        unknown = data.keys() - self.fields.keys()
        if unknown:
            allowed = ", ".join(sorted(self.fields))
            raise serializers.ValidationError(
                f"{sorted(unknown)[0]}: unknown field (allowed: {allowed})"
            )
        return super().to_internal_value(data)


def first_error(errors: Any) -> str:
    """Return the first message of a body's errors, in the order the fields are declared."""
    while isinstance(errors, dict | list):
        errors = next(iter(errors.values() if isinstance(errors, dict) else errors))
    return str(errors)


@extend_schema_serializer(component_name="ItemInput")
class ItemBody(_StrictBody):
    """One item of an upsert. An upsert replaces the whole item: omitted fields are emptied."""

    subject = "item"
    external_id = ExternalIdField()
    title = FreeTextField(max_length=TITLE_MAX, blank=False)
    text = FreeTextField(max_length=TEXT_MAX, blank=True, required=False, missing="")
    attributes = AttributesField(required=False)


@extend_schema_serializer(component_name="ItemBatch")
class ItemBatchBody(serializers.Serializer):  # type: ignore[type-arg]
    """`{"items": [...]}`: the same items as a bare array."""

    items = ItemBody(many=True, allow_empty=False)


ITEM_UPSERT_BODY = PolymorphicProxySerializer(
    component_name="ItemUpsert",
    serializers=[ItemBody(many=True, allow_empty=False), ItemBatchBody],
    resource_type_field_name=None,
    many=False,
)

_ITEM_RULES = ItemBody()


def clean_item(raw: Any) -> ItemInput:
    """Validate one item as the upsert body declares it; raise Invalid naming the field."""
    try:
        data = _ITEM_RULES.run_validation(raw)
    except serializers.ValidationError as exc:
        raise Invalid(first_error(exc.detail)) from exc
    return ItemInput(**data)


def items_from_body(document: Any) -> list[ItemInput]:
    """Validate an upsert body; any invalid item refuses all of them (nothing is written)."""
    if isinstance(document, dict) and set(document) == {"items"}:
        document = document["items"]
    if not isinstance(document, list):
        raise Refusal(400, 'body must be a JSON array of items or {"items": [...]}')
    if not document:
        raise Refusal(400, "no items: send at least one")
    limit = settings.ITEMS_MAX_PER_REQUEST
    if len(document) > limit:
        raise Refusal(413, f"{len(document)} items in one request, at most {limit} allowed")
    items: list[ItemInput] = []
    errors: list[dict[str, Any]] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(document):
        try:
            item = clean_item(raw)
        except Invalid as exc:
            errors.append({"index": index, "error": str(exc)})
            continue
        if item.external_id in first_index:
            errors.append(
                {
                    "index": index,
                    "error": f"external_id: {item.external_id!r} repeats item "
                    f"{first_index[item.external_id]} of this batch",
                }
            )
            continue
        first_index[item.external_id] = index
        items.append(item)
    if errors:
        raise Refusal(
            400,
            f"{len(errors)} invalid item(s); nothing was written (first: item {errors[0]['index']}: "
            f"{errors[0]['error']})",
            errors[:MAX_ERRORS_SHOWN],
        )
    return items


# --- search ---------------------------------------------------------------------------


class ExamplesField(RuleField):
    """Item ids or `{"text": ...}` objects, at most MAX_EXAMPLES."""

    def __init__(self, *, required: bool) -> None:
        example = {
            "description": 'an external id, or {"text": "a free example"}',
        }
        schema = {
            "type": "array",
            "items": example,
            "maxItems": MAX_EXAMPLES,
            **({"minItems": 1} if required else {}),
        }
        super().__init__(schema=schema, required=required, missing=None)

    def run_validation(self, data: Any = empty) -> Any:
        # A missing `like` gets the rule's own message, which says what to send.
        return super().run_validation(None if data is empty else data)

    def check(self, value: Any, field: str) -> Any:
        return examples(value, field, required=self.required)


class _ValueField(RuleField):
    """A field read by a rule of its own (k, where): the rule raises Invalid naming it."""

    def __init__(self, rule: Any, *, schema: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(schema=schema, required=False, missing=None, **kwargs)
        self.rule = rule

    def check(self, value: Any, field: str) -> Any:
        return self.rule(value)


@extend_schema_serializer(component_name="SearchRequest")
class SearchBody(_StrictBody):
    """POST /api/v1/search: positive and negative examples, filters and an optional trend."""

    like = ExamplesField(required=True)
    unlike = ExamplesField(required=False)
    k = _ValueField(parse_k, schema={"type": "integer", "minimum": 1, "maximum": K_MAX})
    where = _ValueField(
        parse_where_json,
        schema={"type": "object", "description": "attribute: value, or a list of values"},
    )
    # `range` and `agg` are checked even without a metric: a wrong one is a mistake.
    range = serializers.CharField(required=False, default=RANGE_DEFAULT, allow_blank=True)
    agg = serializers.ChoiceField(
        choices=["", *AGGS], required=False, default=TREND_AGG_DEFAULT, allow_blank=True
    )
    trend = serializers.CharField(
        required=False, help_text="metric whose trend each result carries"
    )

    def to_internal_value(self, data: Any) -> Any:
        # The trend's three fields are read together by one rule, which names the one at fault.
        values = super().to_internal_value(
            {k: v for k, v in data.items() if k not in ("range", "agg", "trend")}
            if isinstance(data, dict)
            else data
        )
        try:
            values["trend"] = parse_trend(data.get("trend"), data.get("range"), data.get("agg"))
        except Invalid as exc:
            raise serializers.ValidationError(str(exc)) from exc
        liked = {e.external_id for e in values["like"] if e.external_id}
        for example in values.get("unlike") or ():
            if example.external_id in liked:
                raise serializers.ValidationError(
                    f"{example.field}: {example.external_id!r} is also a positive example"
                )
        return values


_SEARCH_RULES = SearchBody()


def search_from_body(body: Any) -> SearchRequest:
    """Validate the body of POST /api/v1/search; raise a 400 naming the field at fault."""
    try:
        data = _SEARCH_RULES.run_validation(body)
    except serializers.ValidationError as exc:
        field, _, reason = first_error(exc.detail).partition(": ")
        raise invalid(field, reason) from exc
    return SearchRequest(
        like=data["like"],
        unlike=data.get("unlike") or (),
        k=data["k"],
        where=data["where"],
        trend=data["trend"],
    )
