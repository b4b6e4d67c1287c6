"""`manage.py export_dashboard <project> <slug> [-o file]`: write a dashboard as JSON."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboards.models import Dashboard
from dashboards.services import export_dashboard


class Command(BaseCommand):
    help = "Export a dashboard and its panels as JSON (to stdout, or to --output)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", help="project slug")
        parser.add_argument("slug", help="dashboard slug")
        parser.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")

    def handle(self, *args: Any, **options: Any) -> None:
        dashboard = Dashboard.objects.filter(
            project__slug=options["project"], slug=options["slug"]
        ).first()
        if dashboard is None:
            raise CommandError(
                f"no dashboard {options['slug']!r} in project {options['project']!r}"
            )
        text = json.dumps(export_dashboard(dashboard=dashboard), indent=2) + "\n"
        if options["output"]:
            options["output"].write_text(text)
            self.stderr.write(f"wrote {dashboard.slug} to {options['output']}")
        else:
            self.stdout.write(text, ending="")
