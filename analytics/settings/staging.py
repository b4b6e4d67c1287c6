"""Settings for staging: production's safety with room for profiling (see the README)."""

from analytics.settings.production import *  # noqa: F403
