"""Create the demo project, its admin login and its dashboards (idempotent); print the login.

It lives in `dashboards`, the app on top, because the demo project's last step is its
dashboards: the core (`analytics`) imports no app.
"""

import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from analytics.models import Membership
from analytics.services import add_member, ensure_project
from dashboards.demo import ensure_demo_dashboards

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create the demo project with an admin user; a second run changes nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password-file",
            type=Path,
            required=True,
            help="file holding the admin password; created with a random one if missing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password_file: Path = options["password_file"]
        if not password_file.exists():
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        with transaction.atomic():
            project = ensure_project(slug=DEMO_SLUG, name="Demo")
            User = get_user_model()
            user = User.objects.filter(username=options["username"]).first()
            if user is None:
                user = User.objects.create_superuser(options["username"], "", password)
            elif not user.check_password(password):
                user.set_password(password)
                user.save(update_fields=["password"])
            add_member(project=project, user=user, role=Membership.Role.ADMIN)
            ensure_demo_dashboards(project=project)
        self.stdout.write(
            f"demo project '{project.slug}', login {user.get_username()} / {password}"
        )
