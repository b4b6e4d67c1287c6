"""URLs of the dashboard and similar-items pages and their panel data."""

from django.urls import URLPattern, path

from dashboards import api, similar, views

app_name = "dashboards"

urlpatterns: list[URLPattern] = [
    path("dashboards/", views.dashboard_list, name="list"),
    path("p/<slug:project_slug>/dashboards/<slug:slug>/", views.dashboard_view, name="view"),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/panels/<int:panel_id>/data",
        api.panel_data_view,
        name="panel-data",
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/panels/<int:panel_id>/data.csv",
        api.panel_csv_view,
        name="panel-csv",
    ),
    path("p/<slug:project_slug>/similar/", similar.similar_page, name="similar"),
]
