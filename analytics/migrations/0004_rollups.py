from django.db import migrations

from analytics.sql_files import run_sql_file, run_sql_file_per_edition


def installed_kind(connection):  # type: ignore[no-untyped-def]
    from analytics.services.rollups import installed_rollup_edition

    return installed_rollup_edition(using=connection, cached=False)


class Migration(migrations.Migration):
    # Continuous aggregates are not created inside a transaction.
    atomic = False

    dependencies = [("analytics", "0003_points_hypertable")]

    operations = [
        run_sql_file("0004_rollup_invalidation.sql"),
        run_sql_file_per_edition(
            {"apache": "0004_rollups_apache.sql", "timescale": "0004_rollups_timescale.sql"},
            installed=installed_kind,
        ),
    ]
