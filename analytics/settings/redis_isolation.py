"""Redis databases of a test run, shared by both test settings modules."""

import os

from analytics.settings.environment import env_int


def with_redis_db(url: str, db: int) -> str:
    """Return `url` pointing at Redis database `db`, so tests never share keys with `make run`."""
    return f"{url.rsplit('/', 1)[0]}/{db}" if url.count("/") > 2 else f"{url}/{db}"


def isolated_redis_urls(*, broker_url: str, redis_url: str) -> tuple[str, str]:
    """Return the (broker, cache) URLs of this test run: databases TEST_REDIS_DB and the next.

    Two suites running side by side (say, two checkouts) each set their own pair. Celery
    prefers the CELERY_BROKER_URL environment variable to the setting, so the test broker
    is written back there too (worker subprocesses inherit it); otherwise every test
    worker would share the stack's broker database.
    """
    db = env_int("TEST_REDIS_DB", 2)
    broker = with_redis_db(broker_url, db)
    os.environ["CELERY_BROKER_URL"] = broker
    return broker, with_redis_db(redis_url, db + 1)
