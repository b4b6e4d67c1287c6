"""URLs of the dashboard and similar-items pages and their panel data."""

from django.urls import URLPattern, path

from dashboards import api, edit_views, similar, views

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
    # The editor, versions and Explore (dashboards/edit_views.py).
    path("p/<slug:project_slug>/dashboards/new", edit_views.dashboard_create, name="create"),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/edit/", edit_views.dashboard_edit, name="edit"
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/save", edit_views.dashboard_save, name="save"
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/preview",
        edit_views.panel_preview,
        name="preview",
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/duplicate",
        edit_views.dashboard_duplicate,
        name="duplicate",
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/delete",
        edit_views.dashboard_delete,
        name="delete",
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/history/",
        edit_views.dashboard_history,
        name="history",
    ),
    path(
        "p/<slug:project_slug>/dashboards/<slug:slug>/history/<int:number>/restore",
        edit_views.version_restore,
        name="restore",
    ),
    path("p/<slug:project_slug>/explore/", edit_views.explore_page, name="explore"),
    path("p/<slug:project_slug>/explore/data", edit_views.explore_data, name="explore-data"),
    path("p/<slug:project_slug>/explore/add", edit_views.explore_add, name="explore-add"),
]
