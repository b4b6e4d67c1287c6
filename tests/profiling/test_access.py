"""Silk's pages are for active staff only: anonymous users go to the login page, others get 403."""

import pytest
from django.urls import URLPattern, reverse
from silk import urls as silk_urls  # type: ignore[import-untyped]
from silk.models import Profile, Request, SQLQuery  # type: ignore[import-untyped]

from tests.helpers import bearer
from tests.profiling.conftest import https_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def silk_urls_to_try(web, project, make_key):
    """Return every silk URL, with the ids of a real recorded request, statement and profile."""
    web.get("/api/v1/catalog/metrics", **bearer(make_key(project)))
    request = Request.objects.get()
    statement = SQLQuery.objects.filter(request=request).first()
    profile = Profile.objects.create(request=request, name="probe")
    ids = {"request_id": request.id, "sql_id": statement.pk, "profile_id": profile.pk}
    urls = []
    for pattern in silk_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        kwargs = {name: ids[name] for name in pattern.pattern.converters}
        urls.append(reverse(f"silk:{pattern.name}", kwargs=kwargs))
    assert len(urls) == len(silk_urls.urlpatterns) > 15
    return urls


def test_anonymous_users_are_sent_to_login(silk_urls_to_try, project, make_key):
    """Every silk URL (GET and POST) redirects an anonymous caller, API key or not, to the login page."""
    client = https_client(**bearer(make_key(project)))
    for url in silk_urls_to_try:
        response = client.get(url)
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].startswith("/accounts/login/?next="), url
        # Views without a POST handler answer 405 before anything else.
        assert client.post(url).status_code in (302, 405), url
    assert Request.objects.count() == 1  # cleardb did nothing


def test_non_staff_users_are_refused(silk_urls_to_try, plain_user):
    """Every silk URL (GET and POST) answers 403 to a logged-in user who is not staff."""
    client = https_client()
    client.force_login(plain_user)
    for url in silk_urls_to_try:
        response = client.get(url)
        assert response.status_code == 403, (url, response.status_code)
        assert b"silk" not in response.content.lower(), url
        assert client.post(url).status_code in (403, 405), url
    assert Request.objects.count() == 1


def test_inactive_staff_is_refused(silk_urls_to_try, staff_user):
    """A staff account that was deactivated cannot read silk, even with a live session."""
    client = https_client()
    client.force_login(staff_user)
    staff_user.is_active = False
    staff_user.save()
    response = client.get(silk_urls_to_try[0])
    assert response.status_code in (302, 403)


def test_staff_read_the_recorded_requests(silk_urls_to_try, staff_web):
    """Staff see silk's summary, the request list and a request's SQL."""
    request = Request.objects.get()
    for name in ("silk:summary", "silk:requests"):
        assert staff_web.get(reverse(name)).status_code == 200
    page = staff_web.get(reverse("silk:request_sql", kwargs={"request_id": request.id}))
    assert page.status_code == 200
    assert b"analytics_series" in page.content or b"analytics_apikey" in page.content
