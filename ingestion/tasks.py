"""Celery tasks of ingestion: thin wrappers that call a service."""

from celery import shared_task

from ingestion.services import purge_expired_receipts


@shared_task(name="ingestion.purge_expired_receipts", time_limit=300)
def purge_receipts() -> int:
    """Delete Idempotency-Key receipts past their TTL."""
    return purge_expired_receipts()
