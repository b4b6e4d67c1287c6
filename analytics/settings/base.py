"""Settings shared by every environment; values that differ between machines come from `environment`."""

from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext

from analytics.settings.environment import env_bool, env_int, env_list, env_str
from analytics.settings.machine import gpu_present, usable_cores

# Lets admin and form classes be subscripted for type checking (ModelAdmin[Project]).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "analytics",
    "ingestion",
    "embeddings",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "analytics.middleware.PlatformMetricsMiddleware",
    "analytics.middleware.RefusalMiddleware",
    # Innermost, so that it sees the resolved view and the project the view noted.
    "analytics.db.middleware.ReplicaRoutingMiddleware",
]

ROOT_URLCONF = "analytics.urls"
WSGI_APPLICATION = "analytics.wsgi.application"
ASGI_APPLICATION = "analytics.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL (TimescaleDB + pgvector) ---------------------------------------------

# Through PgBouncer in transaction mode nothing of a session outlives its transaction,
# so server-side cursors (named, open across statements) and prepared statements (kept
# per server connection) are off, and startup options are not sent (PgBouncer refuses
# them): jit=off is then the server's own setting (docker-compose.yml, scripts/stack.sh).
DATABASE_PGBOUNCER = env_bool("DATABASE_PGBOUNCER")
DATABASE_REPLICA_URLS = env_list("DATABASE_REPLICA_URLS")
# Readers other than the writing project see data at most this old (analytics.db.replicas).
DATABASE_REPLICA_MAX_LAG_S = env_int("DATABASE_REPLICA_MAX_LAG_S", 5)
# Longer than the lag limit: once a project's write position expires, any replica within
# the limit has replayed it.
DATABASE_REPLICA_STICKY_S = max(
    env_int("DATABASE_REPLICA_STICKY_S", 30), 2 * DATABASE_REPLICA_MAX_LAG_S + 1
)


def _database(url: str) -> dict[str, Any]:
    config: dict[str, Any] = dict(
        dj_database_url.parse(
            url,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    )
    # A database that does not answer must fail a request quickly (503), not hang it.
    options: dict[str, Any] = {"connect_timeout": env_int("DATABASE_CONNECT_TIMEOUT", 3)}
    if DATABASE_PGBOUNCER:
        options["prepare_threshold"] = None
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    else:
        # JIT compilation costs hundreds of milliseconds on the large aggregates of
        # rollup refreshes and long-range series reads and never pays back on queries
        # this short.
        options["options"] = "-c jit=off"
    config["OPTIONS"] = options
    return config


DATABASES = {
    "default": _database(env_str("DATABASE_URL", "postgres://analytics@127.0.0.1:5432/analytics"))
}
for _number, _url in enumerate(DATABASE_REPLICA_URLS, start=1):
    # Tests use the primary under each replica's name: test databases are created there.
    DATABASES[f"replica{_number}"] = {**_database(_url), "TEST": {"MIRROR": "default"}}
# Without replicas no router is installed: one server works exactly as it always did.
DATABASE_ROUTERS = ["analytics.db.routers.ReplicaRouter"] if DATABASE_REPLICA_URLS else []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (heartbeats, rate limits) and Celery ---------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
REDIS_URL = env_str("REDIS_URL") or CELERY_BROKER_URL
REDIS_TIMEOUT = env_int("REDIS_TIMEOUT", 2)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "analytics",
        "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT},
    }
}

CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Embedding work runs on its own queue so GPU machines can consume only that.
CELERY_TASK_ROUTES = {"embeddings.*": {"queue": "embeddings"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": REDIS_TIMEOUT,
    "visibility_timeout": 3600,
}
# Beat schedules live here and only here; each cadence says why.
CELERY_BEAT_SCHEDULE = {
    # Often enough that /healthz notices a dead worker within a minute or two.
    "worker-heartbeat": {"task": "analytics.worker_heartbeat", "schedule": 30.0},
    # Rollups: pending minutes are read live, so this cadence only bounds how much
    # live work a dashboard query does.
    "refresh-rollups": {"task": "analytics.refresh_rollups", "schedule": 30.0},
    # Chunks are a day wide, so dropping them once a day is enough.
    "apply-retention": {"task": "analytics.apply_retention", "schedule": 86400.0},
    # Receipts live 24 h; hourly purging keeps the table at about a day of batches.
    "purge-ingest-receipts": {"task": "ingestion.purge_expired_receipts", "schedule": 3600.0},
    # The platform's own metrics: a 10 s lag keeps "Platform health" close to live
    # while each flush writes one COPY per project.
    "flush-platform-metrics": {"task": "analytics.flush_platform_metrics", "schedule": 10.0},
    # Embeddings are asked for after each commit; once a minute the sweep re-asks for
    # those whose message was lost, and records each project's backlog gauge.
    "sweep-embeddings": {"task": "embeddings.sweep", "schedule": 60.0},
}
CELERY_WORKER_STALE_AFTER = env_int("CELERY_WORKER_STALE_AFTER", 120)

# --- Ingestion limits ---------------------------------------------------------------------

INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 20 * 1024 * 1024)
INGEST_MAX_DECOMPRESSED_BYTES = env_int("INGEST_MAX_DECOMPRESSED_BYTES", 100 * 1024 * 1024)
INGEST_MAX_EVENTS = env_int("INGEST_MAX_EVENTS", 50_000)
INGEST_MAX_SERIES_PER_PROJECT = env_int("INGEST_MAX_SERIES_PER_PROJECT", 100_000)
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 3600)
INGEST_RATE_LIMIT_REQUESTS = env_int("INGEST_RATE_LIMIT_REQUESTS", 200)
INGEST_RATE_LIMIT_EVENTS = env_int("INGEST_RATE_LIMIT_EVENTS", 1_000_000)
# Idempotency-Key receipts are kept this long (a retry after that is a new batch).
INGEST_RECEIPT_TTL_HOURS = 24
RETENTION_RAW_DAYS = env_int("RETENTION_RAW_DAYS", 90)
RETENTION_1M_DAYS = env_int("RETENTION_1M_DAYS", 180)
RETENTION_1H_DAYS = env_int("RETENTION_1H_DAYS", 730)
RETENTION_1D_DAYS = env_int("RETENTION_1D_DAYS", 0)
SERIES_MAX_POINTS = env_int("SERIES_MAX_POINTS", 2000)

# --- Embeddings --------------------------------------------------------------------------

# The model settings are read by embedding workers (embeddings/worker.py) only; the web
# knows the model's name (to search among current embeddings) but never loads torch.
EMBEDDINGS_MODEL_DIR = env_str("EMBEDDINGS_MODEL_DIR")  # empty: the packaged all-MiniLM-L6-v2
EMBEDDINGS_MODEL_NAME = env_str("EMBEDDINGS_MODEL_NAME", "all-MiniLM-L6-v2")
EMBEDDINGS_DEVICE = env_str("EMBEDDINGS_DEVICE", "auto")
# Worker sizing follows from the machine unless set (bench/pipeline.py measures it; README
# "Pipeline throughput"). On a CPU: one pool process per core, each with one torch thread,
# set in the child after the fork. Several processes of one thread each keep every core
# busy while one of them waits for PostgreSQL, and never oversubscribe: the old default of
# 2 processes x torch's default of all cores ran 4 spinning threads on 2 cores. Beyond 8
# processes the models' memory adds up, so larger machines give each process more threads.
# On a GPU: one process feeds the device, with every core for tokenizing.
_GPU = gpu_present(EMBEDDINGS_DEVICE)
_CORES = usable_cores()
EMBEDDINGS_WORKER_CONCURRENCY = env_int(
    "EMBEDDINGS_WORKER_CONCURRENCY", 1 if _GPU else min(_CORES, 8)
)
EMBEDDINGS_TORCH_THREADS = env_int(
    "EMBEDDINGS_TORCH_THREADS", max(1, _CORES // max(1, EMBEDDINGS_WORKER_CONCURRENCY))
)
# Rows claimed, encoded and written in one transaction: the encoder sorts texts by length
# only within one call, so bigger claims waste less on padding (a CPU encodes 256-text
# calls faster than 64-text ones); a GPU needs thousands per call to be busy.
EMBEDDINGS_BATCH_SIZE = env_int("EMBEDDINGS_BATCH_SIZE", 4096 if _GPU else 256)
# Item ids per embedding task. On a CPU one claim's worth: tasks of 1024 cost no less CPU per
# item than tasks of 256 but leave a core idle while the last big task of a load finishes
# alone, and make a free-text query (a task of its own, served first) wait longer for a
# pool process. A GPU process takes a few claims per task.
EMBEDDINGS_IDS_PER_TASK = env_int("EMBEDDINGS_IDS_PER_TASK", 16384 if _GPU else 256)
# Most pending items a claim takes beyond its task's own ids when those leave it short
# (services.embed_items): a trickle's backlog is caught up in claims that amortise a
# transaction. Within this cap a worker takes what it encodes in about half a second
# (embeddings.worker.top_up_size), because every item in a claim waits for the whole claim.
EMBEDDINGS_TOP_UP = env_int("EMBEDDINGS_TOP_UP", 4096 if _GPU else 64)
# Workers started without --concurrency (`make run`, docker-compose) size their pool here.
CELERY_WORKER_CONCURRENCY = EMBEDDINGS_WORKER_CONCURRENCY
EMBEDDINGS_QUERY_TIMEOUT = env_int("EMBEDDINGS_QUERY_TIMEOUT", 5)
# An item still unembedded this long after its embedding was asked for lost its message
# (or its worker): the sweep asks again. Longer than an embedding task's time limit.
EMBEDDINGS_REQUEUE_AFTER_SECONDS = 600
ITEMS_MAX_BODY_BYTES = env_int("ITEMS_MAX_BODY_BYTES", 10 * 1024 * 1024)
ITEMS_MAX_PER_REQUEST = env_int("ITEMS_MAX_PER_REQUEST", 1000)

# --- HTTP API ------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "analytics.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "analytics.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Analytics platform API",
    "DESCRIPTION": "Ingest metric events, read series, and find similar items.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI comes from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "http", "scheme": "bearer", "description": "Project API key"}
        }
    },
}

# --- Auth, i18n, static ----------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboards:list"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT: str | None = env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the apps when collectstatic has not run (local, tests).
WHITENOISE_USE_FINDERS = True
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Plotly.js from the plotly package's own bundled file: no copy in the repo, no CDN.
    "dashboards.staticfiles.PlotlyFinder",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"without_traceback": {"()": "analytics.logging_filters.WithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_brief": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["without_traceback"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        **{
            name: {
                "handlers": ["console"],
                "level": env_str("LOG_LEVEL", "INFO"),
                "propagate": False,
            }
            for name in ("analytics", "ingestion", "embeddings", "dashboards")
        },
        # Suspicious requests (a bad Host header, say) are the client's doing: one line each.
        "django.security": {"handlers": ["console_brief"], "level": "WARNING", "propagate": False},
    },
}
