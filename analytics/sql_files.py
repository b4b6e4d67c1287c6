"""Apply reviewed SQL files from migrations_sql/ inside ordinary Django migrations.

A file `NNNN_name.sql` is applied forward; `NNNN_name.reverse.sql`, when present,
undoes it. Each file must open with a comment saying what it does and why the ORM
cannot, so reviewers always find the reason next to the statements.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def run_sql_file_per_edition(
    forward: dict[str, str], *, installed: Callable[[Any], str] | None = None
) -> migrations.RunPython:
    """Return an operation applying the file of the database's TimescaleDB edition.

    `forward` maps an edition ("apache", "timescale") to a file name. On reverse, the
    `.reverse.sql` of the edition reported by `installed(connection)` (by default the
    current edition) is applied, so a database that changed edition since can still
    be migrated back.
    """
    from analytics.timescale import timescaledb_edition

    def apply(apps: Any, schema_editor: Any) -> None:
        edition = timescaledb_edition(using=schema_editor.connection)
        schema_editor.execute(read_sql_file(forward[edition]))

    def revert(apps: Any, schema_editor: Any) -> None:
        edition = (installed or (lambda c: timescaledb_edition(using=c)))(schema_editor.connection)
        name = forward[edition].removesuffix(".sql") + ".reverse.sql"
        schema_editor.execute(read_sql_file(name))

    return migrations.RunPython(apply, revert)
