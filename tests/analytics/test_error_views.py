"""Requests Django refuses before any view runs still get the platform's JSON error naming why."""

import logging
import sys

import pytest
from django.test import Client


@pytest.mark.django_db
def test_an_unknown_host_header_is_a_400_naming_the_host(client: Client, caplog):
    """A Host outside ALLOWED_HOSTS is a JSON 400 naming the Host header, logged in one line."""
    with caplog.at_level(logging.WARNING, logger="django.security"):
        response = client.get("/api/v1/catalog/metrics", HTTP_HOST="evil.example")
    assert response.status_code == 400
    body = response.json()
    assert body["error"].startswith("bad request: Host: names a host this server does not answer")
    assert body["detail"] == [{"field": "Host", "error": body["error"].split(": ", 2)[2]}]
    assert any("evil.example" in record.getMessage() for record in caplog.records)


def test_security_warnings_are_logged_without_a_traceback():
    """The django.security handler drops tracebacks: a client's mistake is one log line."""
    handler = logging.getLogger("django.security").handlers[0]
    try:
        raise ValueError("boom")
    except ValueError:
        error = sys.exc_info()
    record = logging.LogRecord("django.security", logging.ERROR, "", 0, "bad host", None, error)
    assert handler.filter(record)
    assert "Traceback" not in handler.format(record)
