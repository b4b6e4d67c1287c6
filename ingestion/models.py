"""Idempotency receipts: the answer to a batch sent with an Idempotency-Key."""

from django.db import models

from analytics.models import Project


class IngestReceipt(models.Model):
    """The receipt of a committed batch, returned again to a retry with the same key.

    Written in the same transaction as the batch's points, so a receipt exists exactly
    when the batch was stored.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    receipt = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="receipt_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.created_at:%Y-%m-%d %H:%M})"
