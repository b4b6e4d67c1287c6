"""`manage.py import_dashboard <project> <file> [--replace]`: load dashboards from JSON."""

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.models import Project
from dashboards.services import DashboardImportError, import_dashboards


class Command(BaseCommand):
    help = "Import a dashboard (or a list) exported as JSON into a project; all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project slug")
        parser.add_argument("file", help="JSON file, or - for stdin")
        parser.add_argument(
            "--replace", action="store_true", help="overwrite dashboards of the same slug"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        try:
            if options["file"] == "-":
                document = json.load(sys.stdin)
            else:
                with open(options["file"], encoding="utf-8") as handle:
                    document = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CommandError(f"{options['file']}: {exc}") from exc
        try:
            imported = import_dashboards(
                project=project, document=document, replace=options["replace"]
            )
        except DashboardImportError as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        for dashboard in imported:
            self.stdout.write(f"imported {project.slug}/{dashboard.slug} ({dashboard.title})")
