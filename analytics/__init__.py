"""The Django project and the core domain: tenants, API keys, series, points and rollups."""

from analytics.celery import app as celery_app

__all__ = ["celery_app"]
