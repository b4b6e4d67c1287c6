"""Tenants and their credentials: projects, memberships of users, and API keys."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class Project(models.Model):
    """A tenant: every row a user sees belongs to exactly one project."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A Django user's access to a project's pages and read APIs."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        EDITOR = "editor", "Editor"
        ADMIN = "admin", "Admin"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class ApiKey(models.Model):
    """A project credential. Only a SHA-256 of the secret is stored, never the secret."""

    class Scope(models.TextChoices):
        WRITE = "write", "Write (ingest events and items)"
        READ = "read", "Read (series, catalog and search)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=8, choices=Scope.choices))
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# The longest metric name and item id a series may carry: ingestion, the series API and
# search all check against these.
METRIC_MAX = 200
SERIES_ITEM_MAX = 200


class Series(models.Model):
    """One time series: a metric with a tag set (and optionally the item it is about).

    The points hypertable stores only `series_id`, as Prometheus-style stores do, so
    rollups stay narrow and tag filters resolve to ids once.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="series")
    metric = models.CharField(max_length=METRIC_MAX)
    tags = models.JSONField(default=dict)
    # NULL, not "", means "about no item": the ingest path writes NULL for events
    # without an item, and the unique constraint treats NULLs as equal.
    item = models.CharField(max_length=SERIES_ITEM_MAX, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            # NULLS NOT DISTINCT: a series without an item is still unique.
            models.UniqueConstraint(
                fields=["project", "metric", "tags", "item"],
                name="series_unique_identity",
                nulls_distinct=False,
            )
        ]
        indexes = [
            GinIndex(fields=["tags"], name="series_tags_gin", opclasses=["jsonb_path_ops"]),
            models.Index(fields=["project", "item"], name="series_project_item"),
        ]

    def __str__(self) -> str:
        tags = ",".join(f"{k}={v}" for k, v in sorted(self.tags.items()))
        return f"{self.metric}{{{tags}}}"
