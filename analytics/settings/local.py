"""Settings for a developer's machine: the local stack that scripts/stack.sh runs."""

from analytics.settings import profiling
from analytics.settings.base import *  # noqa: F403
from analytics.settings.environment import env_bool, env_str

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY") or "local-only-insecure-key-do-not-deploy"
# Static files come from the apps through WhiteNoise finders; nothing is collected.
STATIC_ROOT = None
# SILK_ENABLED=1 records every request (staging samples 10% by default).
profiling.apply(globals(), default_sample_percent=100)
