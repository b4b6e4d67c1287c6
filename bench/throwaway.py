"""A throwaway database beside the configured one, for benchmarks that migrate their own.

    with throwaway_database("vector", keep=args.keep) as url:
        figures = run(url, args)

Creates `<configured name>_bench_<suffix>` (dropping a leftover first), points DATABASE_URL
at it for Django, and drops it afterwards unless `keep`; Django's connections are closed
first so the drop does not wait on them.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql


def say(message: str) -> None:
    """Progress and headings go to stderr; stdout keeps the figures."""
    print(message, file=sys.stderr, flush=True)


def _admin_execute(url: str, statement: sql.Composed) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


@contextmanager
def throwaway_database(suffix: str, *, keep: bool = False) -> Iterator[str]:
    """Yield the URL of a fresh database `<configured>_bench_<suffix>`; drop it after."""
    source_url = os.environ["DATABASE_URL"]
    base, _, name = source_url.rpartition("/")
    name = name.split("?")[0] + f"_bench_{suffix}"
    url = f"{base}/{name}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    say(f"==> creating database {name}")
    _admin_execute(source_url, drop)
    _admin_execute(source_url, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    os.environ["DATABASE_URL"] = url
    try:
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            say(f"==> kept database {name}")
        else:
            say(f"==> dropping database {name}")
            _admin_execute(source_url, drop)
