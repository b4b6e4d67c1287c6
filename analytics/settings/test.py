"""Settings for the test suite: the real local stack, fast password hashing."""

from analytics.settings.base import *  # noqa: F403
from analytics.settings.environment import env_str
from analytics.settings.redis_isolation import isolated_redis_urls

SECRET_KEY = env_str("SECRET_KEY") or "test-only-insecure-key"
# Static files come from the apps through WhiteNoise finders; nothing is collected.
STATIC_ROOT = None
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

CELERY_BROKER_URL, REDIS_URL = isolated_redis_urls(
    broker_url=CELERY_BROKER_URL,  # noqa: F405
    redis_url=REDIS_URL,  # noqa: F405
)
CELERY_RESULT_BACKEND = REDIS_URL
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CACHES["default"]["KEY_PREFIX"] = "analytics-test"  # noqa: F405
