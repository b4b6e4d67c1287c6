"""URLs of the ingestion endpoints."""

from django.urls import path

from ingestion.api import EventsView, InfluxWriteView

urlpatterns = [
    path("api/v1/events", EventsView.as_view(), name="ingest-events"),
    path("api/v2/write", InfluxWriteView.as_view(), name="influx-write"),
]
