"""Apply reviewed SQL files from migrations_sql/ inside ordinary Django migrations.

A file `NNNN_name.sql` is applied forward; `NNNN_name.reverse.sql`, when present,
undoes it. Each file must open with a comment saying what it does and why the ORM
cannot, so reviewers always find the reason next to the statements.
"""

from pathlib import Path

from django.conf import settings
from django.db import migrations

SQL_DIR = Path(settings.BASE_DIR) / "migrations_sql"


def read_sql_file(name: str, *, directory: Path = SQL_DIR) -> str:
    """Return the statements of `directory/name`, checking the opening comment."""
    path = directory / name
    text = path.read_text(encoding="utf-8")
    if not text.lstrip().startswith("--"):
        raise ValueError(f"{path} must start with a '--' comment saying what it does and why")
    return text


def run_sql_file(name: str, *, directory: Path = SQL_DIR) -> migrations.RunSQL:
    """Return a migration operation applying `name` (and its `.reverse.sql` when undone)."""
    reverse_name = name.removesuffix(".sql") + ".reverse.sql"
    reverse = (
        read_sql_file(reverse_name, directory=directory)
        if (directory / reverse_name).exists()
        else None
    )
    return migrations.RunSQL(read_sql_file(name, directory=directory), reverse_sql=reverse)
