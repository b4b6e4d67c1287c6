"""Settings for the test suite: the real local stack, fast password hashing."""

from analytics.settings.base import *  # noqa: F403
from analytics.settings.environment import env_int, env_str

SECRET_KEY = env_str("SECRET_KEY") or "test-only-insecure-key"
# Static files come from the apps through WhiteNoise finders; nothing is collected.
STATIC_ROOT = None
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _with_redis_db(url: str, db: int) -> str:
    """Return `url` pointing at Redis database `db`, so tests never share keys with `make run`."""
    return f"{url.rsplit('/', 1)[0]}/{db}" if url.count("/") > 2 else f"{url}/{db}"


# Two suites running side by side (say, two checkouts) each set their own pair.
_TEST_REDIS_DB = env_int("TEST_REDIS_DB", 2)
CELERY_BROKER_URL = _with_redis_db(CELERY_BROKER_URL, _TEST_REDIS_DB)  # noqa: F405
REDIS_URL = _with_redis_db(REDIS_URL, _TEST_REDIS_DB + 1)  # noqa: F405
CELERY_RESULT_BACKEND = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "analytics-test"  # noqa: F405
