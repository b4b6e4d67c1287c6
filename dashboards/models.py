"""Dashboards of a project and their panels, with validation of every JSON field.

A panel's query mirrors the series API (metric, agg, `where` filters, group by, bucket);
a filter whose value is `$name` takes the values selected for the dashboard variable
`name`, and is dropped when nothing is selected.
"""

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from analytics.models import Project
from analytics.queries.series import AGGS, FILLS, TagFilter
from analytics.refusals import Refusal
from analytics.series_params import MAX_GROUPS, parse_bucket, parse_filter, parse_time
from dashboards.figures import CHART_KINDS, chart_kind_label

VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
VARIABLE_KEYS = {"name", "tag", "metric", "multi", "default", "label"}
GRID_COLUMNS = 12
MAX_PANEL_ROWS = 24
MAX_FILTERS = 20
MAX_VARIABLES = 20
MAX_DEFAULTS = 100
TEXT_MAX = 200


class Refresh(models.TextChoices):
    OFF = "off", "Off"
    TEN_SECONDS = "10s", "10 seconds"
    ONE_MINUTE = "1m", "1 minute"
    FIVE_MINUTES = "5m", "5 minutes"


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX:
        raise ValidationError(f"{where} must be a string of 1 to {TEXT_MAX} characters")
    return value


def validate_variables(value: Any) -> None:
    """Check a dashboard's variables: a list of {name, tag, metric, multi, default, label}."""
    if not isinstance(value, list):
        raise ValidationError("variables must be a JSON list of objects")
    if len(value) > MAX_VARIABLES:
        raise ValidationError(f"variables: at most {MAX_VARIABLES}")
    names: set[str] = set()
    for index, variable in enumerate(value):
        where = f"variables[{index}]"
        if not isinstance(variable, dict):
            raise ValidationError(f"{where} must be an object")
        unknown = sorted(set(variable) - VARIABLE_KEYS)
        if unknown:
            raise ValidationError(
                f"{where} has unknown keys {unknown}; allowed: {sorted(VARIABLE_KEYS)}"
            )
        name = _text(variable.get("name"), f"{where}.name")
        if not VARIABLE_NAME_RE.fullmatch(name):
            raise ValidationError(
                f"{where}.name {name[:64]!r} must be a letter or _ then [A-Za-z0-9_]"
            )
        if name in names:
            raise ValidationError(f"{where}.name {name!r} is used twice")
        names.add(name)
        _text(variable.get("tag"), f"{where}.tag")
        _text(variable.get("metric"), f"{where}.metric")
        if "label" in variable:
            _text(variable["label"], f"{where}.label")
        multi = variable.get("multi", True)
        if not isinstance(multi, bool):
            raise ValidationError(f"{where}.multi must be true or false")
        default = variable.get("default", [])
        if not isinstance(default, list) or len(default) > MAX_DEFAULTS:
            raise ValidationError(
                f"{where}.default must be a list of at most {MAX_DEFAULTS} values"
            )
        for position, item in enumerate(default):
            _text(item, f"{where}.default[{position}]")
        if not multi and len(default) > 1:
            raise ValidationError(f"{where}.default holds several values but multi is false")


def filter_variable(test: TagFilter) -> str | None:
    """Return the variable a filter refers to (`region:$region`: `region`), or None."""
    if len(test.values) == 1 and test.values[0].startswith("$"):
        return test.values[0][1:]
    return None


def variable_reference(where: str) -> tuple[str, str | None]:
    """Return (filter, variable name or None): `region:$region` refers to variable `region`."""
    return where, filter_variable(parse_filter(where))


def validate_filters(value: Any) -> None:
    """Check a panel's filters: a list of series API `where` strings (`key:value`, `key:$var`)."""
    if not isinstance(value, list):
        raise ValidationError('filters must be a JSON list of strings such as "region:$region"')
    if len(value) > MAX_FILTERS:
        raise ValidationError(f"filters: at most {MAX_FILTERS}")
    for index, where in enumerate(value):
        _text(where, f"filters[{index}]")
        try:
            _, name = variable_reference(where)
        except Refusal as exc:
            raise ValidationError(f"filters[{index}]: {exc.reason}") from exc
        if name is not None and not VARIABLE_NAME_RE.fullmatch(name):
            raise ValidationError(f"filters[{index}]: ${name[:64]} is not a variable name")


def validate_range_bound(value: str) -> None:
    """Check a default range bound: `now`, `now-6h` or an ISO 8601 time."""
    try:
        parse_time(value, "range", datetime.now(UTC))
    except Refusal as exc:
        raise ValidationError(exc.reason) from exc


def validate_bucket(value: str) -> None:
    """Check a panel bucket: `auto` or a multiple of one minute (5m, 1h, 1d)."""
    now = datetime.now(UTC)
    try:
        parse_bucket(value, now, now)
    except Refusal as exc:
        raise ValidationError(exc.reason) from exc


class Dashboard(models.Model):
    """A grid of panels over one project's metrics, with a default range and variables."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dashboards")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64)
    description = models.TextField(blank=True)
    default_from = models.CharField(
        max_length=64,
        default="now-24h",
        validators=[validate_range_bound],
        help_text="now-15m … now-365d, or an ISO 8601 time",
    )
    default_to = models.CharField(max_length=64, default="now", validators=[validate_range_bound])
    refresh = models.CharField(
        "auto-refresh", max_length=8, choices=Refresh.choices, default=Refresh.OFF
    )
    variables = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_variables],
        help_text='[{"name": "region", "tag": "region", "metric": "http.requests", '
        '"multi": true, "default": []}]',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project__name", "title"]
        constraints = [
            models.UniqueConstraint(fields=["project", "slug"], name="dashboard_unique_slug")
        ]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        now = datetime.now(UTC)
        try:
            start = parse_time(self.default_from, "default_from", now)
            end = parse_time(self.default_to, "default_to", now)
        except Refusal:
            return  # the field validators name the bound at fault
        if end <= start:
            raise ValidationError({"default_to": "must be after the default 'from'"})

    def variable_names(self) -> set[str]:
        if not isinstance(self.variables, list):
            return set()
        return {str(v.get("name")) for v in self.variables if isinstance(v, dict)}


class Panel(models.Model):
    """One chart of a dashboard: a series query, a chart kind and a place on the grid."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="panels")
    title = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=16,
        choices=[(kind, chart_kind_label(kind)) for kind in CHART_KINDS],
        default=CHART_KINDS[0],
    )
    metric = models.CharField(max_length=200)
    agg = models.CharField(max_length=8, choices=[(agg, agg) for agg in AGGS], default="avg")
    filters = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_filters],
        help_text='series API filters: ["status:500", "region:$region", "host:in(a,b)"]',
    )
    group_by = models.CharField(max_length=200, blank=True, help_text="a tag key")
    limit = models.PositiveSmallIntegerField(
        default=10, help_text=f"top groups drawn (1 to {MAX_GROUPS}); the rest add up to 'other'"
    )
    bucket = models.CharField(
        max_length=16,
        default="auto",
        validators=[validate_bucket],
        help_text="auto, or a width such as 1m, 1h; widened to auto when the range needs it",
    )
    fill = models.CharField(
        max_length=8,
        choices=[(fill, fill) for fill in FILLS],
        default="none",
        help_text="empty buckets: none (a gap), null, zero, or the previous value",
    )
    compare = models.BooleanField(
        "compare with the previous period",
        default=False,
        help_text="line charts draw it dotted; single stats always compare",
    )
    unit = models.CharField(max_length=32, blank=True)
    x = models.PositiveSmallIntegerField(default=0, help_text=f"column, 0 to {GRID_COLUMNS - 1}")
    y = models.PositiveSmallIntegerField(default=0, help_text="row")
    width = models.PositiveSmallIntegerField(default=6, help_text=f"columns, 1 to {GRID_COLUMNS}")
    height = models.PositiveSmallIntegerField(default=4, help_text="rows of 80 px")

    class Meta:
        ordering = ["y", "x", "id"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind not in CHART_KINDS:
            errors["kind"] = f"must be one of {', '.join(CHART_KINDS)}"
        if not 1 <= self.limit <= MAX_GROUPS:
            errors["limit"] = f"must be from 1 to {MAX_GROUPS}"
        if not 1 <= self.width <= GRID_COLUMNS:
            errors["width"] = f"must be from 1 to {GRID_COLUMNS}"
        elif self.x + self.width > GRID_COLUMNS:
            errors["x"] = f"x + width must be at most {GRID_COLUMNS}"
        if not 1 <= self.height <= MAX_PANEL_ROWS:
            errors["height"] = f"must be from 1 to {MAX_PANEL_ROWS}"
        dashboard = getattr(self, "dashboard", None)
        if dashboard is not None and isinstance(self.filters, list):
            known = dashboard.variable_names()
            for index, where in enumerate(self.filters):
                try:
                    _, name = variable_reference(where)
                except (Refusal, TypeError, AttributeError):
                    continue  # the field validator reports it
                if name is not None and name not in known:
                    errors["filters"] = (
                        f"filters[{index}] uses ${name}, which is not a variable of this dashboard"
                    )
        if errors:
            raise ValidationError(errors)

    @property
    def grid_style(self) -> str:
        """CSS grid placement (columns and rows are 1-based there)."""
        return (
            f"grid-column: {self.x + 1} / span {self.width}; "
            f"grid-row: {self.y + 1} / span {self.height};"
        )


class DashboardVersion(models.Model):
    """One saved state of a dashboard: its whole document, who saved it, when and why.

    `number` counts up per dashboard; the newest number is the token an editor's save
    names, so a save based on an older number is refused instead of overwriting.
    """

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    message = models.CharField(max_length=TEXT_MAX, blank=True)
    document = models.JSONField()

    class Meta:
        ordering = ["dashboard", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["dashboard", "number"], name="dashboard_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dashboard} v{self.number}"
