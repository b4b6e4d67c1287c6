"""Settings for staging: production's safety with room for profiling (see the README).

SILK_ENABLED=1 turns django-silk on (analytics.settings.profiling); everything else,
SECRET_KEY and HTTPS included, is required exactly as in production.
"""

from analytics.settings import profiling
from analytics.settings.production import *  # noqa: F403

profiling.apply(globals(), default_sample_percent=10)
