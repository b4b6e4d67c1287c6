from django.db import migrations

from analytics.sql_files import run_sql_file


class Migration(migrations.Migration):
    dependencies = [("analytics", "0002_series")]

    operations = [run_sql_file("0003_points_hypertable.sql")]
