"""App config of the profiling package: masks credentials in silk's rows before each write."""

from django.apps import AppConfig


class ProfilingConfig(AppConfig):
    name = "analytics.profiling"
    label = "profiling"
    verbose_name = "Profiling (silk)"

    def ready(self) -> None:
        from django.db.models.signals import pre_save
        from silk.models import Request, Response  # type: ignore[import-untyped]

        from analytics.profiling import signals

        # pre_save, not a later scrub: the credential must never reach the table (or its WAL).
        pre_save.connect(
            signals.mask_silk_request, sender=Request, dispatch_uid="mask-silk-request"
        )
        pre_save.connect(
            signals.mask_silk_response, sender=Response, dispatch_uid="mask-silk-response"
        )
