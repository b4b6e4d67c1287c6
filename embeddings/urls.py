"""URLs of the items and search API."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
