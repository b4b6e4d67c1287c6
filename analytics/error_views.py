"""Error pages: the platform's JSON error body under /api/, Django's pages elsewhere."""

from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from analytics.refusals import error_body


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def _bad_request_reason(exception: Exception) -> tuple[str, str]:
    """Return (field, problem) of a request Django refused before any view saw it."""
    if isinstance(exception, DisallowedHost):
        return "Host", "names a host this server does not answer to (see ALLOWED_HOSTS)"
    if isinstance(exception, RequestDataTooBig):
        return "body", "larger than this server accepts"
    if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        return "body", "too many form fields or files"
    return "request", f"refused ({exception.__class__.__name__})"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        field, problem = _bad_request_reason(exception)
        detail = [{"field": field, "error": problem}]
        return JsonResponse(error_body(f"bad request: {field}: {problem}", detail), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("forbidden"), status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body(f"not found: {request.path}"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("internal error"), status=500)
    return defaults.server_error(request)
