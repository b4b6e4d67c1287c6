"""Thin API views of items and search: parse, call one service or query, serialise.

Reads take a read key or a logged-in member (`?project=<slug>`); writes take a write
key. Bodies are read within limits by `ingestion.body.read_body` (gzip allowed).
"""

from typing import Any

import orjson
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api_errors import error_body
from analytics.permissions import ReadScope, WriteScope, request_project
from analytics.renderers import FastJSONRenderer
from analytics.series_params import format_width, refuse_repeated
from embeddings import schema
from embeddings.queries import item_detail, item_summaries
from embeddings.search import SearchOutcome, SearchRefused, search_by_examples, similar_items
from embeddings.services import delete_item, upsert_items
from embeddings.validation import (
    ItemInput,
    clean_item,
    identifier,
    parse_search_body,
    parse_similar_params,
)
from embeddings.worker import model_name
from ingestion.body import read_body
from ingestion.errors import IngestRefused
from ingestion.validation import Invalid

SEARCH_MAX_BODY_BYTES = 256 * 1024
MAX_ERRORS_SHOWN = 100
LIST_LIMIT_DEFAULT = 20
RETRY_AFTER_S = 5


def _refused(status: int, error: str, detail: list[Any] | None = None) -> Response:
    response = Response(error_body(error, detail), status=status)
    if status in (409, 503):
        # Not embedded yet, or no worker: both pass by themselves.
        response["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _json_body(request: Request, max_bytes: int) -> Any:
    """Return the parsed JSON body, or raise IngestRefused (413/415/400) saying why."""
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise IngestRefused(
            415, f"Content-Type {media_type or '(none)'!r} is not supported; use application/json"
        )
    body = read_body(request._request, max_bytes=max_bytes, max_decompressed=max_bytes * 5)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngestRefused(400, f"body is not valid JSON: {exc}") from exc


def _parse_items(document: Any) -> list[ItemInput]:
    """Validate a whole batch; any invalid item refuses all of them (nothing is written)."""
    if isinstance(document, dict) and set(document) == {"items"}:
        document = document["items"]
    if not isinstance(document, list):
        raise IngestRefused(400, 'body must be a JSON array of items or {"items": [...]}')
    if not document:
        raise IngestRefused(400, "no items: send at least one")
    limit = settings.ITEMS_MAX_PER_REQUEST
    if len(document) > limit:
        raise IngestRefused(413, f"{len(document)} items in one request, at most {limit} allowed")
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
        raise IngestRefused(
            400,
            f"{len(errors)} invalid item(s); nothing was written (first: item {errors[0]['index']}: "
            f"{errors[0]['error']})",
            errors[:MAX_ERRORS_SHOWN],
        )
    return items


def _results(outcome: SearchOutcome, k: int) -> dict[str, Any]:
    """Serialise a search: the shape documented in `embeddings.schema.SEARCH_RESULTS`."""
    trends = outcome.trends
    results: list[dict[str, Any]] = []
    for neighbour in outcome.neighbours.results:
        entry: dict[str, Any] = {
            "external_id": neighbour.external_id,
            "title": neighbour.title,
            "score": round(neighbour.score, 6),
            "attributes": neighbour.attributes,
        }
        if trends is not None:
            entry["trend"] = trends.values.get(neighbour.external_id)
        results.append(entry)
    body: dict[str, Any] = {
        "results": results,
        "k": k,
        "count": len(results),
        "matched": outcome.neighbours.matched,
        "model": model_name(),
    }
    if trends is not None:
        body["trend"] = {
            "metric": trends.metric,
            "agg": trends.agg,
            "bucket": format_width(trends.bucket),
            "start": trends.start.isoformat(),
            "end": trends.end.isoformat(),
            "times": trends.times,
        }
    return body


class _ItemsAPIView(APIView):
    """Read methods need the read scope (or a member's session); writes a write key."""

    renderer_classes = [FastJSONRenderer]
    write_methods = frozenset({"POST", "PUT", "PATCH", "DELETE"})

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method in self.write_methods:
            return [WriteScope()]
        return [ReadScope()]


class ItemsView(_ItemsAPIView):
    """List or search the project's items by title (GET); upsert a batch by external id (POST)."""

    @extend_schema(
        # Named explicitly: the generated name collides with GET /api/v1/items/{external_id}.
        operation_id="api_v1_items_list",
        parameters=[
            OpenApiParameter("q", str, description="words that must all appear in the title or id"),
            OpenApiParameter("limit", int, default=LIST_LIMIT_DEFAULT, description="1 to 100"),
            OpenApiParameter("project", str, description="project slug (session users)"),
        ],
        responses=schema.with_errors({200: schema.ITEM_LIST}, 400, 401, 403),
        description=schema.ITEM_LIST_DOC,
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        refuse_repeated(request.query_params)
        raw_limit = request.query_params.get("limit", str(LIST_LIMIT_DEFAULT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
            raise ValidationError({"limit": ["must be an integer from 1 to 100"]})
        search = request.query_params.get("q", "")
        if len(search) > 200 or "\x00" in search:
            raise ValidationError({"q": ["must be at most 200 characters, without NUL"]})
        items = item_summaries(
            project_id=project.pk, search=search, limit=int(raw_limit), model=model_name()
        )
        return Response(
            {
                "items": [
                    {
                        "external_id": item.external_id,
                        "title": item.title,
                        "attributes": item.attributes,
                        "embedded": item.embedded,
                    }
                    for item in items
                ]
            }
        )

    @extend_schema(
        request=schema.ITEM_BATCH,
        responses=schema.with_errors({200: schema.UPSERT_RECEIPT}, 400, 401, 403, 413, 415),
        description=schema.UPSERT_DOC,
    )
    def post(self, request: Request) -> Response:
        project = request_project(request)
        try:
            items = _parse_items(_json_body(request, settings.ITEMS_MAX_BODY_BYTES))
        except IngestRefused as exc:
            return _refused(exc.status, exc.error, exc.detail)
        result = upsert_items(project_id=project.pk, items=items, model=model_name())
        status = {
            **{external_id: "created" for external_id in result.created},
            **{external_id: "updated" for external_id in result.updated},
            **{external_id: "unchanged" for external_id in result.unchanged},
        }
        return Response(
            {
                "created": len(result.created),
                "updated": len(result.updated),
                "unchanged": len(result.unchanged),
                "embedding_queued": len(result.queued),
                "items": [
                    {"external_id": item.external_id, "status": status[item.external_id]}
                    for item in items
                ],
            }
        )


def _external_id(value: str) -> str:
    try:
        return identifier(value)
    except Invalid as exc:
        raise NotFound(f"no item {value[:64]!r} in this project") from exc


class ItemDetailView(_ItemsAPIView):
    """One item (GET, read) or its deletion (DELETE, write key)."""

    @extend_schema(
        parameters=[OpenApiParameter("project", str, description="project slug (session users)")],
        responses=schema.with_errors({200: schema.ITEM_DETAIL}, 401, 403, 404),
    )
    def get(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        item = item_detail(
            project_id=project.pk, external_id=_external_id(external_id), model=model_name()
        )
        if item is None:
            raise NotFound(f"no item {external_id[:64]!r} in this project")
        return Response(
            {
                "external_id": item.external_id,
                "title": item.title,
                "text": item.text,
                "attributes": item.attributes,
                "content_hash": item.content_hash,
                "embedding": {
                    "status": item.embedding_status,
                    "model": item.embedding_model,
                    "embedded_at": item.embedded_at.isoformat() if item.embedded_at else None,
                },
                "created_at": item.created_at.isoformat(),
                "updated_at": item.updated_at.isoformat(),
            }
        )

    @extend_schema(responses=schema.with_errors({204: None}, 401, 403, 404))
    def delete(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        if not delete_item(project_id=project.pk, external_id=_external_id(external_id)):
            raise NotFound(f"no item {external_id[:64]!r} in this project")
        return Response(status=204)


class SimilarView(_ItemsAPIView):
    """The k items most similar to one item, optionally filtered and with a metric's trend."""

    @extend_schema(
        parameters=schema.SIMILAR_PARAMETERS,
        responses=schema.with_errors({200: schema.SEARCH_RESULTS}, 400, 401, 403, 404, 409),
        description=schema.SEARCH_RESULTS_DOC,
    )
    def get(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        k, where, trend = parse_similar_params(request.query_params)
        try:
            outcome = similar_items(
                project_id=project.pk,
                external_id=_external_id(external_id),
                k=k,
                where=where,
                trend=trend,
                model=model_name(),
            )
        except SearchRefused as exc:
            if exc.status == 422:  # the item in the path is unknown
                raise NotFound(f"no item {external_id[:64]!r} in this project") from exc
            return _refused(exc.status, exc.error.replace("external_id: ", "", 1), exc.detail)
        return Response(_results(outcome, k))


class SearchView(_ItemsAPIView):
    """Search by positive and negative examples (items or free text), as Qdrant's recommend."""

    # A search changes nothing: read scope, although it is a POST.
    write_methods = frozenset()

    @extend_schema(
        request=schema.SEARCH_REQUEST,
        parameters=[OpenApiParameter("project", str, description="project slug (session users)")],
        responses=schema.with_errors(
            {200: schema.SEARCH_RESULTS}, 400, 401, 403, 409, 413, 415, 422, 503
        ),
        examples=schema.SEARCH_EXAMPLES,
        description=schema.SEARCH_RESULTS_DOC,
    )
    def post(self, request: Request) -> Response:
        project = request_project(request)
        try:
            search = parse_search_body(_json_body(request, SEARCH_MAX_BODY_BYTES))
        except IngestRefused as exc:
            return _refused(exc.status, exc.error, exc.detail)
        try:
            outcome = search_by_examples(project_id=project.pk, request=search, model=model_name())
        except SearchRefused as exc:
            return _refused(exc.status, exc.error, exc.detail)
        return Response(_results(outcome, search.k))
