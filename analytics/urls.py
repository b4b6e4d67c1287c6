"""URL configuration of the whole project."""

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from analytics.api import (
    HealthView,
    MetricCatalogView,
    ProjectView,
    SeriesView,
    TagKeyCatalogView,
    TagValueCatalogView,
)

urlpatterns = [
    path("healthz", HealthView.as_view(), name="healthz"),
    path("admin/", admin.site.urls),
    # Members log in here; the admin's login admits staff only.
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="dashboards/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", RedirectView.as_view(pattern_name="dashboards:list"), name="home"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("ingestion.urls")),
    path("", include("embeddings.urls")),
    path("", include("dashboards.urls")),
    path("api/v1/project", ProjectView.as_view(), name="api-project"),
    path("api/v1/projects/<slug:slug>", ProjectView.as_view(), name="api-project-detail"),
    path("api/v1/series", SeriesView.as_view(), name="api-series"),
    path("api/v1/catalog/metrics", MetricCatalogView.as_view(), name="catalog-metrics"),
    path("api/v1/catalog/tag-keys", TagKeyCatalogView.as_view(), name="catalog-tag-keys"),
    path("api/v1/catalog/tag-values", TagValueCatalogView.as_view(), name="catalog-tag-values"),
]

# Silk is installed only by staging and local settings with SILK_ENABLED=1 (never in
# production or tests); /silk/ exists only then, for staff only.
if apps.is_installed("silk"):
    urlpatterns.append(path("silk/", include("silk.urls", namespace="silk")))

handler400 = "analytics.error_views.bad_request"
handler403 = "analytics.error_views.permission_denied"
handler404 = "analytics.error_views.page_not_found"
handler500 = "analytics.error_views.server_error"
