"""The OpenAPI schema and docs, and the extensions and edition of the database."""

import pytest

from analytics.timescale import timescaledb_edition

pytestmark = pytest.mark.django_db


def test_schema_lists_the_endpoints_and_the_key_scheme(client):
    """/api/schema/ is OpenAPI 3 with every endpoint and the API key security scheme."""
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {"/healthz", "/api/v1/project", "/api/v1/projects/{slug}"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_docs_page_needs_no_internet(client):
    """/api/docs/ serves Swagger UI from the project's own static files, not a CDN."""
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "swagger-ui" in html
    assert "cdn." not in html
    assert "unpkg" not in html
    asset = html.split('src="')[1].split('"')[0]
    assert asset.startswith("/static/")
    assert b"".join(client.get(asset).streaming_content)


def test_unknown_api_path_is_json_404(client):
    """Unknown API paths get the platform's JSON error, not an HTML page."""
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"] == "not found: /api/v1/nothing-here"


def test_both_extensions_are_installed_by_migrations(django_db_setup):
    """Migrations create timescaledb and vector in the database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        names = {row[0] for row in cursor.fetchall()}
    assert {"timescaledb", "vector"} <= names


def test_edition_is_read_from_the_license_setting():
    """The edition matches current_setting('timescaledb.license')."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('timescaledb.license', true)")
        license_name = cursor.fetchone()[0]
    expected = "timescale" if license_name == "timescale" else "apache"
    assert timescaledb_edition() == expected
