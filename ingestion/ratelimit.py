"""Per-API-key rate limits in Redis: requests and events per one-second window."""

import logging
import time

import redis
from django.conf import settings

from analytics.redis_client import redis_client
from analytics.refusals import Refusal

logger = logging.getLogger(__name__)


def _count(key: str, amount: int, window: int) -> int:
    pipe = redis_client().pipeline()
    pipe.incrby(key, amount)
    pipe.expire(key, window + 1)
    return int(pipe.execute()[0])


def enforce_rate_limit(*, key_prefix: str, events: int = 0) -> None:
    """Count one request (and `events` events) for the key; raise 429 past a limit.

    Windows are whole seconds. If Redis is down the limit is not enforced: PostgreSQL,
    not Redis, decides whether data is stored, and ingestion must not stop with Redis.
    """
    limits = (
        ("requests", settings.INGEST_RATE_LIMIT_REQUESTS, 0 if events else 1),
        ("events", settings.INGEST_RATE_LIMIT_EVENTS, events),
    )
    now = time.time()
    window = int(now)
    for name, limit, amount in limits:
        if limit <= 0 or amount <= 0:
            continue
        try:
            used = _count(f"ratelimit:{name}:{key_prefix}:{window}", amount, 1)
        except redis.RedisError as exc:
            logger.warning("rate limit not enforced, Redis failed: %s", exc)
            return
        if used > limit:
            retry_after = max(1, int(window + 1 - now + 0.999))
            raise Refusal(
                429,
                f"rate limit exceeded: more than {limit} {name} per second for this API key",
                headers={"Retry-After": str(retry_after)},
            )
