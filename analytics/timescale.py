"""Facts about the TimescaleDB underneath: which edition it is, read in one place."""

from typing import Literal

from django.db import connection
from django.db.backends.base.base import BaseDatabaseWrapper

Edition = Literal["timescale", "apache"]


def timescaledb_edition(*, using: BaseDatabaseWrapper | None = None) -> Edition:
    """Return the licence edition of the TimescaleDB the database runs.

    `timescale` (the TSL edition) has continuous aggregates and policies; `apache`
    (Debian's build and several hosted services) has hypertables and time_bucket only.
    """
    with (using or connection).cursor() as cursor:
        cursor.execute("SELECT current_setting('timescaledb.license', true)")
        row = cursor.fetchone()
    return "timescale" if row and row[0] == "timescale" else "apache"
