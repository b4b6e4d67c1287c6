"""Small helpers for tests: auth headers and the environment of worker subprocesses."""

import os

from django.db import connection

from analytics.services import IssuedKey


def bearer(issued: IssuedKey) -> dict[str, str]:
    """Return the header that authenticates with `issued`."""
    return {"HTTP_AUTHORIZATION": f"Bearer {issued.secret}"}


def worker_environment() -> dict[str, str]:
    """Return the environment of a subprocess that must see the test database and Redis."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="analytics.settings.test",
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    return env
