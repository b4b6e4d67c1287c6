"""URLs of the dashboard and similar-items pages and their panel data."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
