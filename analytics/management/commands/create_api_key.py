"""Create an API key for a project and print its secret, once."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.models import Project
from analytics.services import create_api_key


class Command(BaseCommand):
    help = "Create an API key for a project and print its secret (it is not stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--name", required=True, help="what the key is for")
        parser.add_argument(
            "--scopes", default="write", help="comma-separated: write, read (default: write)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug '{options['project']}'")
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            issued = create_api_key(project=project, name=options["name"], scopes=scopes)
        except ValueError as exc:
            raise CommandError(f"--scopes: {exc}") from exc
        self.stderr.write(
            f"created key '{issued.api_key.name}' for {project.slug} ({', '.join(scopes)});"
        )
        self.stderr.write("the secret below is shown once and never stored:")
        self.stdout.write(issued.secret)
