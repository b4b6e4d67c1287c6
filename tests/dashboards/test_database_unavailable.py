"""Plain (non-DRF) views with the database gone: 503 with Retry-After, as JSON or as a page, never 500."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection
from django.test import Client

from dashboards.models import Dashboard
from tests.dashboards.conftest import RANGE, panel_url
from tests.helpers import free_port

# The transaction of a plain django_db test would hide a lost connection behind its rollback.
pytestmark = pytest.mark.django_db(transaction=True)

UNAVAILABLE = "the database is unavailable; nothing was written, retry later"
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@contextmanager
def unreachable_database() -> Iterator[None]:
    """Point the connection at a port where nothing listens, as a server that is down."""
    original_port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = original_port


def test_pages_and_panel_data_answer_503_with_retry_after_while_the_database_is_down(
    dash_client: Client, dashboard: Dashboard
):
    """Database down: the pages answer a 503 page, panel data and CSV a 503 JSON body."""
    page_url = f"/p/{dashboard.project.slug}/dashboards/{dashboard.slug}/"
    data_url, csv_url = panel_url(dashboard, 0), panel_url(dashboard, 0, "data.csv")
    with unreachable_database():
        pages = [
            dash_client.get(url, HTTP_ACCEPT=BROWSER_ACCEPT) for url in ("/dashboards/", page_url)
        ]
        data = [
            dash_client.get(data_url, RANGE, HTTP_ACCEPT="application/json"),
            dash_client.get(csv_url, RANGE),
        ]
    for page in pages:
        assert page.status_code == 503, page.content[:300]
        assert page["Retry-After"] == "5"
        assert page["Content-Type"].startswith("text/html")
        assert b'id="database-unavailable"' in page.content
    for answer in data:
        assert answer.status_code == 503, answer.content[:300]
        assert answer["Retry-After"] == "5"
        assert answer.json() == {"error": UNAVAILABLE, "detail": []}
    # Back up: the same client is served again.
    assert dash_client.get(data_url, RANGE).status_code == 200


def test_panel_data_whose_connection_was_lost_mid_session_answers_503(
    dash_client: Client, dashboard: Dashboard
):
    """The open connection's backend terminated (a restart, a failover): 503 JSON, not 500."""
    data_url = panel_url(dashboard, 0)
    assert dash_client.get(data_url, RANGE).status_code == 200
    # The backend ends itself: the test client keeps the connection between requests,
    # so the next request meets a connection that the server has closed.
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    try:
        answer = dash_client.get(data_url, RANGE)
    finally:
        connection.close()
    assert answer.status_code == 503, answer.content[:300]
    assert answer["Retry-After"] == "5"
    assert answer.json()["error"] == UNAVAILABLE
    assert dash_client.get(data_url, RANGE).status_code == 200
