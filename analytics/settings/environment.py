"""The one place where settings read the process environment.

Every variable a deployment may set is declared in `VARIABLES` with its meaning; reading
an undeclared name is an error, so the list below is always the whole truth (the
docker-compose test checks that compose sets nothing outside it).
"""

import os

VARIABLES: dict[str, str] = {
    "DJANGO_SETTINGS_MODULE": "settings module: analytics.settings.{local,test,staging,production}",
    "SECRET_KEY": "Django's signing key; required in staging and production",
    "DEBUG": "1 to show tracebacks (local only)",
    "ALLOWED_HOSTS": "comma-separated host names the web server answers to",
    "CSRF_TRUSTED_ORIGINS": "comma-separated origins (scheme://host) trusted for form posts",
    "DATABASE_URL": "postgres://user:password@host:port/name of PostgreSQL with TimescaleDB and pgvector",
    "DATABASE_CONNECT_TIMEOUT": "seconds to wait for a PostgreSQL connection",
    "DATABASE_CONN_MAX_AGE": "seconds a web process keeps its PostgreSQL connection",
    "DATABASE_REPLICA_URLS": "comma-separated postgres:// URLs of streaming read replicas (none: every read on DATABASE_URL)",
    "DATABASE_REPLICA_MAX_LAG_S": "seconds a replica may be behind and still serve reads (default 5)",
    "DATABASE_REPLICA_STICKY_S": "seconds a project's reads wait for replicas to replay its last write (default 30)",
    "DATABASE_PGBOUNCER": "1 when the database URLs point at PgBouncer in transaction mode",
    "CELERY_BROKER_URL": "redis://host:port/db of the Celery broker",
    "REDIS_URL": "redis://host:port/db of the cache (heartbeats, rate limits); defaults to the broker",
    "REDIS_TIMEOUT": "seconds before a Redis call gives up",
    "TEST_REDIS_DB": "test settings only: Redis database of the test broker (the cache uses the next one)",
    "CELERY_WORKER_STALE_AFTER": "seconds after which a silent Celery worker makes /healthz fail",
    "LOG_LEVEL": "level of the platform's own loggers",
    "SECURE_SSL_REDIRECT": "1 to redirect HTTP to HTTPS in production (off behind a TLS proxy that does it)",
    "STATIC_ROOT": "folder collectstatic writes to",
    "INGEST_MAX_BODY_BYTES": "largest request body accepted by ingestion, as sent (compressed or not)",
    "INGEST_MAX_DECOMPRESSED_BYTES": "largest body after gzip decompression",
    "INGEST_MAX_EVENTS": "most events (or line-protocol fields) in one request",
    "INGEST_MAX_SERIES_PER_PROJECT": "series cardinality limit of a project",
    "INGEST_MAX_FUTURE_SECONDS": "how far ahead of the receipt time an event may be",
    "INGEST_RATE_LIMIT_REQUESTS": "ingest requests per second allowed per API key (0: no limit)",
    "INGEST_RATE_LIMIT_EVENTS": "events per second allowed per API key (0: no limit)",
    "RETENTION_RAW_DAYS": "days raw points are kept; older events are refused at ingest",
    "RETENTION_1M_DAYS": "days 1-minute rollups are kept (0: forever)",
    "RETENTION_1H_DAYS": "days 1-hour rollups are kept (0: forever)",
    "RETENTION_1D_DAYS": "days 1-day rollups are kept (0: forever)",
    "SERIES_MAX_POINTS": "most buckets one series query may return",
    "SILK_ENABLED": "1 to record requests and their SQL with django-silk (staging and local only; production and test never load it)",
    "SILK_SAMPLE_PERCENT": "percentage of requests silk records, 0-100 (default: 10 in staging, 100 in local)",
    "SILK_MAX_RECORDED_REQUESTS": "requests silk keeps; a Celery beat task deletes the oldest beyond it",
    "SILK_MAX_BODY_BYTES": "request and response bodies larger than this are not stored by silk",
    "SILK_PYTHON_PROFILER": "1 to run cProfile on every recorded request (slows those requests down)",
    "EMBEDDINGS_MODEL_DIR": "sentence-transformers model folder of the encoder (default: the packaged all-MiniLM-L6-v2)",
    "EMBEDDINGS_MODEL_NAME": "name stored with each embedding; changing it re-embeds every item",
    "EMBEDDINGS_DEVICE": "encoder device in embedding workers: auto, cpu, cuda or cuda:N",
    "EMBEDDINGS_BATCH_SIZE": "items an embedding worker claims, encodes and writes in one transaction (default: 256 on a CPU, 4096 on a GPU)",
    "EMBEDDINGS_IDS_PER_TASK": "item ids per embedding task sent after a commit (default: 256 on a CPU, 16384 on a GPU)",
    "EMBEDDINGS_TOP_UP": "most pending items an embedding claim takes beyond its task's own ids, within what the worker encodes in about 0.5 s (default: 64 on a CPU, 4096 on a GPU)",
    "EMBEDDINGS_WORKER_CONCURRENCY": "pool processes of a Celery worker started without --concurrency (default: one per core up to 8 on a CPU, 1 on a GPU)",
    "EMBEDDINGS_TORCH_THREADS": "torch threads of each embedding pool process (default: cores / pool processes)",
    "EMBEDDINGS_QUERY_TIMEOUT": "seconds the web waits for a worker to encode a free-text query (then 503)",
    "ITEMS_MAX_BODY_BYTES": "largest request body accepted by POST /api/v1/items",
    "ITEMS_MAX_PER_REQUEST": "most items in one POST /api/v1/items",
}


def _read(name: str, default: str) -> str:
    if name not in VARIABLES:
        raise KeyError(f"{name} is not declared in analytics.settings.environment.VARIABLES")
    return os.environ.get(name, default)


def env_str(name: str, default: str = "") -> str:
    """Return the variable as a string, or `default` when it is unset."""
    return _read(name, default)


def env_required(name: str) -> str:
    """Return the variable, failing loudly at start-up when it is unset or empty."""
    value = _read(name, "")
    if not value:
        raise RuntimeError(f"the environment variable {name} must be set ({VARIABLES[name]})")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable read as a boolean (1/true/yes/on are true)."""
    raw = _read(name, "1" if default else "0")
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer, naming it when it is not one."""
    raw = _read(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(
            f"the environment variable {name} must be an integer, not {raw!r}"
        ) from exc


def env_list(name: str, default: str = "") -> list[str]:
    """Return the variable split on commas, blanks dropped."""
    return [part.strip() for part in _read(name, default).split(",") if part.strip()]
