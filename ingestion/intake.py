"""The ingest use case: from a request's bounded body to stored points and a receipt.

The views (`ingestion.api`) read HTTP (headers, parameters, the body within limits)
into an `IngestRequest`; this module parses it in the endpoint's wire format, enforces
the per-event rate limit, stores the batch idempotently and records the platform's own
metric.
"""

from collections.abc import Callable
from dataclasses import dataclass

from analytics.models import Project
from analytics.platform_metrics import EVENTS_INGESTED, record_platform_metric
from ingestion.ratelimit import enforce_rate_limit
from ingestion.services import ParsedBatch, Receipt, request_fingerprint, store_batch


@dataclass(frozen=True)
class IngestRequest:
    """What an ingest request carries, read and bounded by the view."""

    project: Project
    # Rate limits count per API key (a member's session shares one budget).
    rate_key: str
    path: str
    media_type: str
    body: bytes
    partial: bool
    idempotency_key: str | None


def ingest_request(*, request: IngestRequest, parse: Callable[[bytes], ParsedBatch]) -> Receipt:
    """Parse, rate-limit, store and count one request's events; return its receipt.

    Raises Refusal (400, 413, 422, 429) with nothing written.
    """
    batch = parse(request.body)
    enforce_rate_limit(key_prefix=request.rate_key, events=len(batch.points))
    # Hashing the whole body is only needed to recognise a retry by its key.
    fingerprint = (
        request_fingerprint(request.path, request.media_type, str(request.partial), request.body)
        if request.idempotency_key
        else ""
    )
    receipt = store_batch(
        project=request.project,
        batch=batch,
        partial=request.partial,
        idempotency_key=request.idempotency_key,
        fingerprint=fingerprint,
    )
    if not receipt.replayed and receipt.body["accepted"]:
        record_platform_metric(
            project_id=request.project.pk,
            metric=EVENTS_INGESTED,
            value=receipt.body["accepted"],
        )
    return receipt
