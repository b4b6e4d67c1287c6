"""URLs of the items and search API.

External ids may hold slashes (`<path:…>`), so `…/similar` is matched first.
"""

from django.urls import path

from embeddings.api import ItemDetailView, ItemsView, SearchView, SimilarView

urlpatterns = [
    path("api/v1/items", ItemsView.as_view(), name="items"),
    path("api/v1/items/<path:external_id>/similar", SimilarView.as_view(), name="items-similar"),
    path("api/v1/items/<path:external_id>", ItemDetailView.as_view(), name="item-detail"),
    path("api/v1/search", SearchView.as_view(), name="items-search"),
]
