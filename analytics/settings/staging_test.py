"""Settings for the profiling tests: staging with silk on, on the test database and Redis.

`pytest --ds=analytics.settings.staging_test tests/profiling` runs them; the main suite
(analytics.settings.test) never loads silk. The suite stands in for a staging deployment's
environment, so it supplies what staging requires before importing it.
"""

import os

os.environ.setdefault("SECRET_KEY", "staging-test-only-insecure-key-" + "x" * 40)
os.environ["SILK_ENABLED"] = "1"
# Every request is recorded, so a test's request is always there to look at.
os.environ.setdefault("SILK_SAMPLE_PERCENT", "100")

from analytics.settings.environment import env_int
from analytics.settings.staging import *  # noqa: F403

# Static files come from the apps through WhiteNoise finders; nothing is collected.
STATIC_ROOT = None
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Its own test database (silk's tables), so this run and the main suite's never share one.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_staging"}  # noqa: F405


def _with_redis_db(url: str, db: int) -> str:
    """Return `url` pointing at Redis database `db`, so tests never share keys with `make run`."""
    return f"{url.rsplit('/', 1)[0]}/{db}" if url.count("/") > 2 else f"{url}/{db}"


_TEST_REDIS_DB = env_int("TEST_REDIS_DB", 2)
CELERY_BROKER_URL = _with_redis_db(CELERY_BROKER_URL, _TEST_REDIS_DB)  # noqa: F405
# Celery prefers the CELERY_BROKER_URL environment variable to the setting, so the test
# broker is written back there too (worker subprocesses inherit it); otherwise tests would
# share the stack's broker database with every other worker.
os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
REDIS_URL = _with_redis_db(REDIS_URL, _TEST_REDIS_DB + 1)  # noqa: F405
CELERY_RESULT_BACKEND = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "analytics-staging-test"  # noqa: F405
