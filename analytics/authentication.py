"""The one authentication class for project API keys, shared by every API view."""

import hmac
from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from analytics.models import ApiKey, Project
from analytics.platform_metrics import note_request_project
from analytics.services import KEY_PREFIX_MARK, hash_secret, touch_api_key


class ApiKeyUser(AnonymousUser):
    """The principal of a request made with an API key: a project, not a person.

    It is authenticated (DRF's IsAuthenticated passes) but has no Django permissions,
    so it can never reach the admin or a page.
    """

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.project: Project = api_key.project

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate `Authorization: Bearer <key>`; unknown or revoked keys get 401."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                f"malformed Authorization header: expected '{self.keyword} <key>'"
            )
        try:
            secret = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("the API key contains non-ASCII bytes") from exc
        api_key = find_api_key(secret)
        touch_api_key(api_key=api_key)
        # A key names its project, so even a refused request (wrong scope) is filed there.
        note_request_project(request, api_key.project_id)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        # Returning a challenge makes DRF answer 401 (not 403) when no key is sent.
        return f'{self.keyword} realm="api"'


def find_api_key(secret: str) -> ApiKey:
    """Return the active key whose secret is `secret`, or raise AuthenticationFailed."""
    parts = secret.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX_MARK:
        raise exceptions.AuthenticationFailed("unknown API key")
    api_key = ApiKey.objects.select_related("project").filter(prefix=parts[1]).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        raise exceptions.AuthenticationFailed("unknown API key")
    if not api_key.is_active:
        raise exceptions.AuthenticationFailed("this API key has been revoked")
    return api_key


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Describe the API key scheme in the OpenAPI schema."""

    target_class = "analytics.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "Project API key"}


class TokenApiKeyAuthentication(ApiKeyAuthentication):
    """The same keys as `Authorization: Token <key>`, as InfluxDB clients and Telegraf send."""

    keyword = "Token"


class TokenApiKeyAuthenticationScheme(ApiKeyAuthenticationScheme):  # type: ignore[no-untyped-call]
    target_class = "analytics.authentication.TokenApiKeyAuthentication"
    name = "InfluxToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Project API key as 'Token <key>' (InfluxDB v2 clients)",
        }
