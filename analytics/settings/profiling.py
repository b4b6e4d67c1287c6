"""Silk profiling wiring shared by the staging and local settings (production and test never call it).

`apply(globals(), ...)` at the end of a settings module switches django-silk on when
SILK_ENABLED is set: the app, its middleware, the safe SILKY_* defaults and the beat task
that keeps the recorded requests under their cap. With the variable unset it changes nothing.
"""

from typing import Any

from analytics.settings.environment import env_bool, env_int

SILK_APPS = ["silk", "analytics.profiling"]
# Outermost first: the context middleware sees the request before silk records it (so
# silk's rows are masked from the first write) and after silk saves the response.
SILK_MIDDLEWARE = [
    "analytics.profiling.middleware.ProfilingContextMiddleware",
    "silk.middleware.SilkyMiddleware",
    "analytics.profiling.middleware.SilkSQLMiddleware",
]
GC_TASK = "profiling.collect_silk_garbage"
# Names and words that mark a header, query parameter or body field as a credential.
SENSITIVE_KEYS = {
    "username",
    "api",
    "token",
    "key",
    "secret",
    "password",
    "signature",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "cookie",
    "csrf",
}


def staff_only(user: Any) -> bool:
    """Return whether `user` may read silk's pages: active staff only."""
    return bool(user and user.is_active and user.is_staff)


def _percent(name: str, default: int) -> int:
    value = env_int(name, default)
    if not 0 <= value <= 100:
        raise RuntimeError(
            f"the environment variable {name} must be between 0 and 100, not {value}"
        )
    return value


def apply(namespace: dict[str, Any], *, default_sample_percent: int) -> None:
    """Switch silk on in the settings `namespace` when SILK_ENABLED is set."""
    if not env_bool("SILK_ENABLED") or "silk" in namespace["INSTALLED_APPS"]:
        return
    namespace["INSTALLED_APPS"] = [*namespace["INSTALLED_APPS"], *SILK_APPS]
    middleware = list(namespace["MIDDLEWARE"])
    # After WhiteNoise, so static files (served and answered there) are never recorded.
    anchor = "whitenoise.middleware.WhiteNoiseMiddleware"
    at = middleware.index(anchor) + 1 if anchor in middleware else 1
    middleware[at:at] = SILK_MIDDLEWARE
    namespace["MIDDLEWARE"] = middleware

    body_bytes = env_int("SILK_MAX_BODY_BYTES", 64 * 1024)
    namespace.update(
        # Only logged-in, active staff see /silk/ (anonymous users are sent to the login page,
        # others get 403): recorded requests hold bodies, headers and SQL of real users.
        SILKY_AUTHENTICATION=True,
        SILKY_AUTHORISATION=True,
        SILKY_PERMISSIONS=staff_only,
        SILKY_INTERCEPT_PERCENT=_percent("SILK_SAMPLE_PERCENT", default_sample_percent),
        # Probed every few seconds by load balancers: noise, never slow.
        SILKY_IGNORE_PATHS=["/healthz"],
        SILKY_MAX_REQUEST_BODY_SIZE=body_bytes,
        SILKY_MAX_RESPONSE_BODY_SIZE=body_bytes,
        SILKY_HIDE_COOKIES=True,
        SILKY_SENSITIVE_KEYS=SENSITIVE_KEYS,
        SILKY_MAX_RECORDED_REQUESTS=env_int("SILK_MAX_RECORDED_REQUESTS", 5000),
        # 0 turns off silk's own garbage collection on the request path; the beat task
        # below does it in batches instead.
        SILKY_MAX_RECORDED_REQUESTS_CHECK_PERCENT=0,
        SILKY_PYTHON_PROFILER=env_bool("SILK_PYTHON_PROFILER"),
        # Profiles stay in the database: a .prof file on one web machine is lost to the others.
        SILKY_PYTHON_PROFILER_BINARY=False,
        SILKY_META=False,
        # Silk's own SQL hook sees ORM queries only (not the psycopg.sql reads of series,
        # search and panels) and runs EXPLAIN on each one during the request. An empty
        # ignore string matches every statement, so that hook records nothing and
        # SilkSQLMiddleware records all SQL, masked, with no EXPLAIN on the request path.
        SILKY_IGNORE_QUERIES=[""],
        SILKY_ANALYZE_QUERIES=False,
    )
    namespace["CELERY_BEAT_SCHEDULE"] = {
        **namespace["CELERY_BEAT_SCHEDULE"],
        # Every 5 minutes: the table overshoots its cap by at most 5 minutes of sampled
        # requests, and each run deletes in batches so no lock is held for long.
        "collect-silk-garbage": {"task": GC_TASK, "schedule": 300.0},
    }
