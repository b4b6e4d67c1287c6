"""Store a parsed batch: all-or-nothing or partial, with Idempotency-Key receipts."""

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.locks import advisory_xact_lock
from analytics.models import Project
from analytics.refusals import Refusal
from analytics.services.points import CleanPoint, SeriesLimitExceeded, ingest_points
from ingestion.models import IngestReceipt

MAX_ERRORS_SHOWN = 100


@dataclass
class ParsedBatch:
    """Points parsed from one request, each with the position it came from.

    `sources[i]` is the error locator of `points[i]` (`{"index": 3}` for a JSON event,
    `{"line": 7}` for a line of line protocol); `errors` lists what failed to parse.
    """

    points: list[CleanPoint] = field(default_factory=list)
    sources: list[dict[str, int]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Receipt:
    body: dict[str, Any]
    replayed: bool = False


def request_fingerprint(*parts: bytes | str) -> str:
    """Return a hash of what a request carried, to tell a retry from a different batch."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def _ordered(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(errors, key=lambda error: (error.get("index", 0), error.get("line", 0)))


def _previous_receipt(project: Project, key: str, fingerprint: str) -> Receipt | None:
    # Serialise retries of the same key: the second waits for the first to commit.
    with connection.cursor() as cursor:
        advisory_xact_lock(cursor, "ingest-receipt", project.pk, key)
    horizon = timezone.now() - timedelta(hours=settings.INGEST_RECEIPT_TTL_HOURS)
    previous = IngestReceipt.objects.filter(
        project=project, key=key, created_at__gte=horizon
    ).first()
    if previous is None:
        IngestReceipt.objects.filter(project=project, key=key).delete()  # expired
        return None
    if previous.request_hash != fingerprint:
        raise Refusal(
            422,
            "Idempotency-Key was already used for a different request in the last "
            f"{settings.INGEST_RECEIPT_TTL_HOURS} h",
            [{"field": "Idempotency-Key", "error": "reuse with a different body"}],
        )
    return Receipt(body=previous.receipt, replayed=True)


def store_batch(
    *,
    project: Project,
    batch: ParsedBatch,
    partial: bool,
    idempotency_key: str | None = None,
    fingerprint: str = "",
) -> Receipt:
    """Write `batch` for `project` and return its receipt.

    Without `partial`, any error refuses the whole batch (400, nothing written).
    With it, valid points are stored and the rest reported. A retry carrying the same
    `idempotency_key` (and the same request) within the TTL gets the first receipt
    back and writes nothing.
    """
    with transaction.atomic():
        if idempotency_key:
            previous = _previous_receipt(project, idempotency_key, fingerprint)
            if previous is not None:
                return previous
        errors = list(batch.errors)
        if errors and not partial:
            shown = _ordered(errors)[:MAX_ERRORS_SHOWN]
            raise Refusal(
                400,
                f"{len(errors)} invalid event(s); nothing was written (send ?partial=1 to store "
                "the valid ones)",
                shown,
                extra={"accepted": 0, "duplicates": 0, "rejected": shown},
            )
        try:
            result = ingest_points(
                project_id=project.pk,
                points=batch.points,
                series_limit=settings.INGEST_MAX_SERIES_PER_PROJECT,
                refuse_over_limit=partial,
            )
        except SeriesLimitExceeded as exc:
            raise Refusal(422, str(exc), [{"field": "series", "error": str(exc)}]) from exc
        if result.refused_series:
            message = (
                f"series cardinality limit ({settings.INGEST_MAX_SERIES_PER_PROJECT}) reached: "
                "new series refused"
            )
            refused_sources = {
                tuple(source.items())
                for point, source in zip(batch.points, batch.sources, strict=True)
                if point.series in result.refused_series
            }
            errors.extend({**dict(source), "error": message} for source in refused_sources)
        ordered = _ordered(errors)
        body = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": ordered[:MAX_ERRORS_SHOWN],
            "rejected_count": len(ordered),
        }
        if idempotency_key:
            IngestReceipt.objects.create(
                project=project,
                key=idempotency_key,
                request_hash=fingerprint,
                receipt=body,
            )
    return Receipt(body=body)


def purge_expired_receipts() -> int:
    """Delete receipts older than the TTL; return how many went."""
    horizon = timezone.now() - timedelta(hours=settings.INGEST_RECEIPT_TTL_HOURS)
    deleted, _ = IngestReceipt.objects.filter(created_at__lt=horizon).delete()
    return deleted
