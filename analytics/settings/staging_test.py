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

from analytics.settings.redis_isolation import isolated_redis_urls
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

CELERY_BROKER_URL, REDIS_URL = isolated_redis_urls(
    broker_url=CELERY_BROKER_URL,  # noqa: F405
    redis_url=REDIS_URL,  # noqa: F405
)
CELERY_RESULT_BACKEND = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "analytics-staging-test"  # noqa: F405
