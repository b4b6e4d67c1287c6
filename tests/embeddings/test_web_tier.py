"""The web tier never loads torch, and the OpenAPI schema documents the items API."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = """
import json, sys
import django
django.setup()
from django.urls import get_resolver
import analytics.urls, embeddings.api, embeddings.admin, embeddings.search, embeddings.tasks
import embeddings.worker
from django.contrib import admin
admin.autodiscover()
get_resolver().url_patterns
from drf_spectacular.generators import SchemaGenerator
schema = SchemaGenerator().get_schema(request=None, public=True)
print(json.dumps({
    "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")),
    "paths": sorted(schema["paths"]),
    "components": sorted(schema["components"]["schemas"]),
}))
"""


def test_web_modules_do_not_import_torch():
    """Importing the URLconf, views, admin, tasks and schema in a fresh process loads no torch."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "analytics.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["torch"] == []
    for path in (
        "/api/v1/items",
        "/api/v1/items/{external_id}",
        "/api/v1/items/{external_id}/similar",
        "/api/v1/search",
    ):
        assert path in probe["paths"]
    assert {"SearchResults", "SearchRequest", "ItemUpsertReceipt", "ItemList"} <= set(
        probe["components"]
    )
