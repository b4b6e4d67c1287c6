"""Create, drop and rebuild the rollups of an edition from their reviewed SQL files."""

from dataclasses import dataclass

from django.db import connection

from analytics.services.rollups.edition import forget_installed_edition, installed_rollup_edition
from analytics.services.rollups.refresh import RefreshResult, refresh_rollups
from analytics.sql_files import read_sql_file
from analytics.timescale import Edition, timescaledb_edition

_ROLLUP_FILES = {"apache": "0004_rollups_apache.sql", "timescale": "0004_rollups_timescale.sql"}


@dataclass(frozen=True)
class RebuildResult:
    before: Edition  # the kind of rollups that were dropped
    after: Edition  # the kind created, the server's edition
    refresh: RefreshResult  # the fill from the points


def install_rollups(*, edition: Edition) -> None:
    """Create the rollups of `edition` (the migration's forward step)."""
    with connection.cursor() as cursor:
        cursor.execute(read_sql_file(_ROLLUP_FILES[edition]))
    forget_installed_edition()


def drop_rollups() -> Edition:
    """Drop whichever rollups exist; return which kind they were."""
    edition = installed_rollup_edition(cached=False)
    with connection.cursor() as cursor:
        cursor.execute(read_sql_file(_ROLLUP_FILES[edition].removesuffix(".sql") + ".reverse.sql"))
    forget_installed_edition()
    return edition


def rebuild_rollups() -> RebuildResult:
    """Replace the rollups with those of the server's current edition and fill them."""
    before = drop_rollups()
    after = timescaledb_edition()
    install_rollups(edition=after)
    return RebuildResult(before=before, after=after, refresh=refresh_rollups(full=True))
