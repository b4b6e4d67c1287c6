"""Admin for dashboards and their panels, with JSON export (an action) and import (a page)."""

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from analytics.models import Project
from dashboards.models import Dashboard, Panel
from dashboards.services import DashboardImportError, export_dashboard, import_dashboards

MAX_IMPORT_BYTES = 2 * 1024 * 1024


class PanelInline(admin.StackedInline[Panel, Dashboard]):
    model = Panel
    extra = 0
    fieldsets = [
        (None, {"fields": [("title", "kind")]}),
        (
            "Query",
            {
                "fields": [
                    ("metric", "agg"),
                    "filters",
                    ("group_by", "limit"),
                    ("bucket", "compare"),
                    "unit",
                ]
            },
        ),
        ("Position", {"fields": [("x", "y", "width", "height")]}),
    ]


class ImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    file = forms.FileField(help_text="a dashboard exported as JSON (one object, or a list)")
    replace = forms.BooleanField(
        required=False, help_text="overwrite a dashboard of the same slug in that project"
    )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin[Dashboard]):
    list_display = ["title", "project", "slug", "default_from", "refresh", "updated_at"]
    list_filter = ["project"]
    list_select_related = ["project"]
    search_fields = ["title", "slug", "description"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [PanelInline]
    actions = ["export_json"]
    change_list_template = "admin/dashboards/dashboard/change_list.html"

    @admin.action(description="Export selected dashboards as JSON")
    def export_json(self, request: HttpRequest, queryset: QuerySet[Dashboard]) -> HttpResponse:
        dashboards = list(queryset.prefetch_related("panels"))
        documents = [export_dashboard(dashboard=dashboard) for dashboard in dashboards]
        body = documents[0] if len(documents) == 1 else documents
        name = dashboards[0].slug if len(dashboards) == 1 else "dashboards"
        response = HttpResponse(
            json.dumps(body, indent=2), content_type="application/json; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{name}.json"'
        return response

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="dashboards_dashboard_import",
            )
        ]
        return extra + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        """Import a JSON document into a project; errors name the field at fault."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                if upload.size > MAX_IMPORT_BYTES:
                    raise DashboardImportError({"file": [f"larger than {MAX_IMPORT_BYTES} bytes"]})
                try:
                    document = json.loads(upload.read())
                except (ValueError, UnicodeDecodeError) as exc:
                    raise DashboardImportError({"file": [f"not JSON: {exc}"]}) from exc
                imported = import_dashboards(
                    project=form.cleaned_data["project"],
                    document=document,
                    replace=form.cleaned_data["replace"],
                )
            except DashboardImportError as exc:
                for field, problems in exc.errors.items():
                    form.add_error(None, f"{field}: {' '.join(problems)}")
            else:
                titles = ", ".join(dashboard.title for dashboard in imported)
                self.message_user(request, f"Imported {titles}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:dashboards_dashboard_changelist"))
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import dashboards",
        }
        return TemplateResponse(request, "admin/dashboards/dashboard/import.html", context)
