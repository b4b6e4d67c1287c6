"""One Redis client per process and URL, with the platform's timeouts."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=4)
def _client(url: str, timeout: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)


def redis_client() -> redis.Redis:
    """Return the client for settings.REDIS_URL (a pool, safe to share within a process)."""
    return _client(settings.REDIS_URL, settings.REDIS_TIMEOUT)
