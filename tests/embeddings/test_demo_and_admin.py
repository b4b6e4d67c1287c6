"""The demo catalogue command and the item admin."""

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from embeddings.models import Item
from embeddings.validation import content_hash
from ingestion.demo import build_specs

pytestmark = pytest.mark.django_db


def test_seed_demo_items_matches_the_demo_shop(capsys):
    """Every product of seed_demo gets an item with its sku and category; a re-run writes nothing."""
    call_command("seed_demo_items", "--project", "shop")
    products = {
        str(spec.key[2]): dict(spec.key[1])["category"]
        for spec in build_specs(300)
        if spec.key[0] == "shop.product_views"
    }
    items = {item.external_id: item for item in Item.objects.filter(project__slug="shop")}
    assert set(items) == set(products)
    assert "sku-0001" in items
    for sku, category in products.items():
        item = items[sku]
        assert item.attributes["category"] == category
        assert item.title
        assert len(item.text.split()) > 10
        assert item.content_hash == content_hash(item.title, item.text)
    assert f"{len(products)} items ({len(products)} created" in capsys.readouterr().out
    call_command("seed_demo_items", "--project", "shop")
    assert "(0 created, 0 updated); 0 queued" in capsys.readouterr().out


def test_admin_edits_go_through_the_upsert(client, project):
    """Adding and editing an item in the admin keeps its content hash and refuses bad attributes."""
    admin = User.objects.create_superuser("admin", password="pw")
    client.force_login(admin)
    form = {
        "project": project.pk,
        "external_id": "a-1",
        "title": "Teapot",
        "text": "Cast iron",
        "attributes": '{"category": "kitchen"}',
    }
    response = client.post("/admin/embeddings/item/add/", form)
    assert response.status_code == 302, response.content[:2000]
    item = Item.objects.get(project=project, external_id="a-1")
    assert item.content_hash == content_hash("Teapot", "Cast iron")
    response = client.post(
        f"/admin/embeddings/item/{item.pk}/change/", {**form, "text": "Porcelain"}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.text, item.content_hash) == ("Porcelain", content_hash("Teapot", "Porcelain"))
    bad = client.post(
        "/admin/embeddings/item/add/",
        {**form, "external_id": "a-2", "attributes": '{"a": {"b": 1}}'},
    )
    assert bad.status_code == 200
    assert b"must be a string, number, boolean or null" in bad.content
    assert not Item.objects.filter(external_id="a-2").exists()
    assert client.get("/admin/embeddings/item/").status_code == 200
