"""Thin API views of items and search: parse, call one service or query, serialise.

Reads take a read key or a logged-in member (`?project=<slug>`); writes take a write
key. Bodies are read within the core's limits (`analytics.request_body`, gzip allowed)
and validated by their declarations (`embeddings.bodies`); refusals are the core's
`Refusal`, rendered by the API's exception handler.
"""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics.api_errors import with_errors
from analytics.endpoints import EndpointNames
from analytics.permissions import ReadScope, WriteScope, request_project
from analytics.refusals import invalid, not_found
from analytics.renderers import FastJSONRenderer
from analytics.request_body import read_json_body
from analytics.series_params import format_width
from analytics.validation import Invalid, refuse_repeated
from embeddings import schema
from embeddings.active_model import model_name
from embeddings.bodies import ITEM_UPSERT_BODY, SearchBody, items_from_body, search_from_body
from embeddings.queries import item_detail, item_summaries
from embeddings.search import SearchOutcome, search_by_examples, similar_items
from embeddings.services import delete_item, upsert_items
from embeddings.validation import identifier, parse_similar_params

SEARCH_MAX_BODY_BYTES = 256 * 1024
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
LIST_SEARCH_MAX = 200


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
        "model": outcome.model,
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
            OpenApiParameter(
                "limit", int, default=LIST_LIMIT_DEFAULT, description=f"1 to {LIST_LIMIT_MAX}"
            ),
            OpenApiParameter("project", str, description="project slug (session users)"),
        ],
        responses=with_errors({200: schema.ITEM_LIST}, 400, 401, 403),
        description=schema.ITEM_LIST_DOC,
    )
    def get(self, request: Request) -> Response:
        project = request_project(request)
        refuse_repeated(request.query_params)
        raw_limit = request.query_params.get("limit", str(LIST_LIMIT_DEFAULT))
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
            raise invalid("limit", f"must be an integer from 1 to {LIST_LIMIT_MAX}")
        search = request.query_params.get("q", "")
        if len(search) > LIST_SEARCH_MAX or "\x00" in search:
            raise invalid("q", f"must be at most {LIST_SEARCH_MAX} characters, without NUL")
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
        request=ITEM_UPSERT_BODY,
        responses=with_errors({200: schema.UPSERT_RECEIPT}, 400, 401, 403, 413, 415),
        description=schema.UPSERT_DOC,
    )
    def post(self, request: Request) -> Response:
        project = request_project(request)
        body = read_json_body(request._request, max_bytes=settings.ITEMS_MAX_BODY_BYTES)
        items = items_from_body(body)
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
        raise not_found(f"no item {value[:64]!r} in this project") from exc


class ItemDetailView(_ItemsAPIView):
    """One item (GET, read) or its deletion (DELETE, write key)."""

    @extend_schema(
        parameters=[OpenApiParameter("project", str, description="project slug (session users)")],
        responses=with_errors({200: schema.ITEM_DETAIL}, 401, 403, 404),
    )
    def get(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        item = item_detail(
            project_id=project.pk, external_id=_external_id(external_id), model=model_name()
        )
        if item is None:
            raise not_found(f"no item {external_id[:64]!r} in this project")
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

    @extend_schema(responses=with_errors({204: None}, 401, 403, 404))
    def delete(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        if not delete_item(project_id=project.pk, external_id=_external_id(external_id)):
            raise not_found(f"no item {external_id[:64]!r} in this project")
        return Response(status=204)


class SimilarView(_ItemsAPIView):
    """The k items most similar to one item, optionally filtered and with a metric's trend."""

    endpoint_names = EndpointNames(metric="similar", profile="search:similar")

    @extend_schema(
        parameters=schema.SIMILAR_PARAMETERS,
        responses=with_errors({200: schema.SEARCH_RESULTS}, 400, 401, 403, 404, 409),
        description=schema.SEARCH_RESULTS_DOC,
    )
    def get(self, request: Request, external_id: str) -> Response:
        project = request_project(request)
        params = parse_similar_params(request.query_params)
        outcome = similar_items(
            project_id=project.pk,
            external_id=_external_id(external_id),
            k=params.k,
            where=params.where,
            trend=params.trend,
        )
        return Response(_results(outcome, params.k))


class SearchView(_ItemsAPIView):
    """Search by positive and negative examples (items or free text), as Qdrant's recommend."""

    # A search changes nothing: read scope, although it is a POST.
    write_methods = frozenset()
    endpoint_names = EndpointNames(metric="search", profile="search")

    @extend_schema(
        request=SearchBody,
        parameters=[OpenApiParameter("project", str, description="project slug (session users)")],
        responses=with_errors({200: schema.SEARCH_RESULTS}, 400, 401, 403, 409, 413, 415, 422, 503),
        examples=schema.SEARCH_EXAMPLES,
        description=schema.SEARCH_RESULTS_DOC,
    )
    def post(self, request: Request) -> Response:
        project = request_project(request)
        search = search_from_body(read_json_body(request._request, max_bytes=SEARCH_MAX_BODY_BYTES))
        outcome = search_by_examples(project_id=project.pk, request=search)
        return Response(_results(outcome, search.k))
