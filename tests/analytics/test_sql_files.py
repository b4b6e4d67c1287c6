"""migrations_sql files are applied by migrations, forward and in reverse."""

import pytest
from django.db import connection

from analytics.sql_files import read_sql_file, run_sql_file


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


@pytest.mark.django_db
def test_file_and_its_reverse_apply(tmp_path):
    """A file runs forward; its .reverse.sql undoes it."""
    (tmp_path / "0001_probe.sql").write_text(
        "-- Create a probe table.\nCREATE TABLE sqlfile_probe (x int);\n"
    )
    (tmp_path / "0001_probe.reverse.sql").write_text(
        "-- Drop the probe table.\nDROP TABLE sqlfile_probe;\n"
    )
    operation = run_sql_file("0001_probe.sql", directory=tmp_path)
    with connection.cursor() as cursor:
        cursor.execute(str(operation.sql))
        assert table_exists("sqlfile_probe")
        cursor.execute(str(operation.reverse_sql))
    assert not table_exists("sqlfile_probe")


def test_file_without_reverse_is_irreversible(tmp_path):
    """With no .reverse.sql the operation cannot be undone."""
    (tmp_path / "0002_x.sql").write_text("-- Nothing.\nSELECT 1;\n")
    assert not run_sql_file("0002_x.sql", directory=tmp_path).reversible


def test_file_must_explain_itself(tmp_path):
    """A file that does not open with a comment is refused."""
    (tmp_path / "0003_bare.sql").write_text("SELECT 1;\n")
    with pytest.raises(ValueError, match="must start with a '--' comment"):
        read_sql_file("0003_bare.sql", directory=tmp_path)
