"""Two fully stocked tenants for the isolation sweep and the schema fuzzing.

Every name a tenant owns (project slug, metric, tag value, item ids and titles,
dashboard, panel, member) contains the tenant's marker, a random word such as
`alpha3f09c2`, so "no foreign row in this answer" is one substring test. Both tenants
also share a metric name and an item id with very different values (1 against 1000),
and their items' vectors are near-identical, so a query that forgot its project filter
would return the other tenant's rows first rather than by luck.

The data is committed (a live server is another process) and removed by `remove_tenant`.
"""

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.db import connection

from analytics.models import Project, Series
from analytics.services.points import CleanPoint, Tags, ingest_points
from analytics.services.tenants import add_member, create_api_key, ensure_project
from dashboards.models import Dashboard, Panel
from embeddings.constants import EMBEDDING_DIMENSIONS
from embeddings.models import Item
from embeddings.services import embed_items, upsert_items
from embeddings.validation import ItemInput, embedding_input
from embeddings.worker import model_name

SHARED_METRIC = "iso.shared"
SHARED_ITEM = "shared-sku"
ITEM_COUNT = 3
POINTS_PER_SERIES = 30
PASSWORD = "isolation-pass-5521"


@dataclass(frozen=True)
class Tenant:
    """A project with keys of every scope, a member, points, items and a dashboard."""

    marker: str
    project_id: int
    slug: str
    rw_key: str
    read_key: str
    write_key: str
    username: str
    metric: str
    tag_key: str
    tag_value: str
    items: tuple[str, ...]  # external ids, the shared one last
    shared_value: float  # every point of SHARED_METRIC has this value
    dashboard_slug: str
    dashboard_id: int
    panel_id: int
    api_key_id: int
    item_pk: int
    user_id: int


def _vector(index: int, offset: float) -> np.ndarray:
    """Return a unit vector near axis `index`, tilted by `offset` (tenants differ by it)."""
    vector = np.zeros(EMBEDDING_DIMENSIONS, dtype=np.float32)
    vector[index] = 1.0
    vector[EMBEDDING_DIMENSIONS - 1] = offset
    return vector / np.linalg.norm(vector)


def build_tenant(
    label: str, *, shared_value: float, offset: float, marker: str | None = None
) -> Tenant:
    """Create and commit one tenant whose every name contains `<label><random hex>`.

    A fixed `marker` gives fixed names (what an interrupted run left under it is removed
    first), for a schema loaded before the tenant exists to name its objects.
    """
    marker = marker or f"{label}{secrets.token_hex(3)}"
    _remove(project_slug=f"{marker}-proj", username=f"{marker}-member")
    project = ensure_project(slug=f"{marker}-proj", name=f"{marker} project")
    keys = {
        scopes: create_api_key(project=project, name=f"{marker} {scopes}", scopes=scopes.split())
        for scopes in ("read write", "read", "write")
    }
    user = User.objects.create_user(f"{marker}-member", password=PASSWORD)
    add_member(project=project, user=user)

    metric, tag_key, tag_value = f"{marker}.requests", f"{marker}key", f"{marker}-eu"
    item_ids = (*(f"{marker}-item-{index}" for index in range(ITEM_COUNT)), SHARED_ITEM)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    moments = [now - timedelta(minutes=5 + minute) for minute in range(POINTS_PER_SERIES)]
    tags: Tags = ((tag_key, tag_value),)
    points = [
        CleanPoint((metric, tags, item_ids[index % len(item_ids)]), moment, float(index), None)
        for index, moment in enumerate(moments)
    ] + [
        CleanPoint(
            (SHARED_METRIC, (("region", "shared"),), SHARED_ITEM), moment, shared_value, None
        )
        for moment in moments
    ]
    ingest_points(project_id=project.pk, points=points, series_limit=1000)

    inputs = [
        ItemInput(
            external_id=external_id,
            title=f"{marker} lamp {index}",
            text=f"A desk lamp of {marker}, model {index}.",
            attributes={"owner": marker, "shelf": index},
        )
        for index, external_id in enumerate(item_ids)
    ]
    upserted = upsert_items(project_id=project.pk, items=inputs, model=model_name())
    vectors = {
        embedding_input(item.title, item.text): _vector(index, offset)
        for index, item in enumerate(inputs)
    }
    # The vectors are chosen, not computed by the model: their geometry is what the test needs.
    embed_items(
        item_ids=upserted.queued,
        encode=lambda texts: np.stack([vectors[text] for text in texts]),
        model=model_name(),
        batch_size=len(inputs),
    )

    dashboard = Dashboard.objects.create(
        project=project, slug=f"{marker}-board", title=f"{marker} board"
    )
    panel = Panel.objects.create(
        dashboard=dashboard, title=f"{marker} panel", metric=metric, group_by=tag_key
    )
    return Tenant(
        marker=marker,
        project_id=project.pk,
        slug=project.slug,
        rw_key=keys["read write"].secret,
        read_key=keys["read"].secret,
        write_key=keys["write"].secret,
        username=user.username,
        metric=metric,
        tag_key=tag_key,
        tag_value=tag_value,
        items=item_ids,
        shared_value=shared_value,
        dashboard_slug=dashboard.slug,
        dashboard_id=dashboard.pk,
        panel_id=panel.pk,
        api_key_id=keys["read write"].api_key.pk,
        item_pk=Item.objects.get(project=project, external_id=item_ids[0]).pk,
        user_id=user.pk,
    )


def tenant_rows(tenant: Tenant, *, cursor: Any = None) -> dict[str, Any]:
    """Return counts of everything the tenant owns, to show that nothing was written into it.

    `cursor`: a DB-API cursor on the database that holds the tenant (a live server's
    own), else Django's connection's.
    """
    if cursor is None:
        with connection.cursor() as own:
            return tenant_rows(tenant, cursor=own)
    cursor.execute(
        """SELECT (SELECT count(*) FROM analytics_series WHERE project_id = %(p)s),
                  (SELECT count(*) FROM points p JOIN analytics_series s ON s.id = p.series_id
                    WHERE s.project_id = %(p)s),
                  (SELECT count(*) FROM embeddings_item WHERE project_id = %(p)s),
                  (SELECT count(*) FROM dashboards_dashboard WHERE project_id = %(p)s),
                  (SELECT count(*) FROM analytics_apikey WHERE project_id = %(p)s)""",
        {"p": tenant.project_id},
    )
    row = cursor.fetchone()
    assert row is not None
    return dict(zip(("series", "points", "items", "dashboards", "api_keys"), row, strict=True))


def remove_tenant(tenant: Tenant) -> None:
    """Delete everything `build_tenant` committed (points are not reached by the ORM)."""
    _remove(project_slug=tenant.slug, username=tenant.username)


def _remove(*, project_slug: str, username: str) -> None:
    ids = list(Series.objects.filter(project__slug=project_slug).values_list("id", flat=True))
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM points WHERE series_id = ANY(%s)", [ids])
    Project.objects.filter(slug=project_slug).delete()
    User.objects.filter(username=username).delete()
