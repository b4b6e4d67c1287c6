from django.db import migrations

from analytics.sql_files import run_sql_file


class Migration(migrations.Migration):
    # Its own migration: Django adds the foreign keys of 0003 only when that migration ends.
    dependencies = [("embeddings", "0003_bulk_reembed")]

    operations = [run_sql_file("embeddings_0004_next_vector_cascade.sql")]
