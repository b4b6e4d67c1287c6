"""Admin for items: edits go through the upsert service, so embeddings follow the text."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models.expressions import RawSQL
from django.http import HttpRequest

from analytics.validation import Invalid
from embeddings.active_model import model_name
from embeddings.bodies import clean_item
from embeddings.currency import embedding_state_sql
from embeddings.models import Item
from embeddings.services import upsert_items
from embeddings.validation import ItemInput


class ItemForm(forms.ModelForm[Item]):
    class Meta:
        model = Item
        fields = ["project", "external_id", "title", "text", "attributes"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        raw = {name: cleaned.get(name) for name in ("title", "text", "attributes")}
        raw["external_id"] = cleaned.get("external_id") or (self.instance.external_id or None)
        try:
            cleaned["item_input"] = clean_item({k: v for k, v in raw.items() if v is not None})
        except Invalid as exc:
            field, _, message = str(exc).partition(": ")
            self.add_error(field if field in self.fields else None, message or str(exc))
        return cleaned


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin[Item]):
    form = ItemForm
    list_display = ["external_id", "title", "project", "embedding_state", "updated_at"]
    list_filter = ["project", "embedding_model"]
    search_fields = ["external_id", "title"]
    list_select_related = ["project"]
    readonly_fields = [
        "content_hash",
        "embedded_hash",
        "embedding_model",
        "embedded_at",
        "embedding_requested_at",
        "created_at",
        "updated_at",
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Item | None = None) -> list[str]:
        # The identity of an item is fixed: a new external id is a new item.
        identity = ["project", "external_id"] if obj is not None else []
        return [*identity, *self.readonly_fields]

    def get_queryset(self, request: HttpRequest) -> Any:
        # The 384 floats of each vector are never shown; do not read them. The state is
        # computed by the database with the same rule as the API's.
        state = RawSQL(embedding_state_sql(model="%s"), [model_name()])
        return super().get_queryset(request).defer("embedding").annotate(state=state)

    @admin.display(description="embedding", ordering="state")
    def embedding_state(self, item: Item) -> str:
        return str(getattr(item, "state", ""))

    def save_model(self, request: HttpRequest, obj: Item, form: Any, change: bool) -> None:
        item_input: ItemInput = form.cleaned_data["item_input"]
        upsert_items(project_id=obj.project_id, items=[item_input], model=model_name())
        saved = Item.objects.only("pk").get(
            project_id=obj.project_id, external_id=item_input.external_id
        )
        obj.pk = saved.pk
