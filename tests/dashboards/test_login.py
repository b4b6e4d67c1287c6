"""Members log in with the site's own login page, staff or not, and land on their dashboards."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_a_member_who_is_not_staff_logs_in_and_reaches_the_dashboards(client: Client, dash_user):
    """The login form admits a non-staff member and sends them to the page they asked for."""
    assert not dash_user.is_staff
    page = client.get("/accounts/login/", {"next": "/dashboards/"})
    assert page.status_code == 200
    assert b'id="login-form"' in page.content
    response = client.post(
        "/accounts/login/",
        {"username": "dana", "password": "pw-dana-123", "next": "/dashboards/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/dashboards/"
    assert client.get("/dashboards/").status_code == 200


def test_a_wrong_password_shows_the_form_again_with_an_error(client: Client, dash_user):
    """A wrong password answers the form with an error and logs nobody in."""
    response = client.post("/accounts/login/", {"username": "dana", "password": "nope"})
    assert response.status_code == 200
    assert b'id="login-error"' in response.content
    assert client.get("/dashboards/").status_code == 302


def test_logging_out_ends_the_session(client: Client, dash_user):
    """Log out is a POST; afterwards the pages send the visitor to the login page again."""
    client.force_login(dash_user)
    assert client.post("/accounts/logout/").status_code == 302
    response = client.get("/dashboards/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_site_root_leads_to_the_dashboards(client: Client, dash_user):
    """/ redirects to the dashboard list (and from there to login when anonymous)."""
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/dashboards/"
