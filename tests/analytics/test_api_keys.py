"""API key rules: 401 for missing, unknown or revoked keys; 403 for wrong scope or project."""

import io

import pytest
from django.core.management import call_command
from django.db import connection

from analytics.models import ApiKey, Membership
from analytics.services import add_member, create_api_key, revoke_api_key
from tests.helpers import bearer

pytestmark = pytest.mark.django_db


def test_missing_key_is_401_with_challenge(api_client, project):
    """A request without credentials gets 401, a Bearer challenge and a JSON reason."""
    response = api_client.get("/api/v1/project")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json() == {
        "error": "no API key: send the header 'Authorization: Bearer <key>'",
        "detail": [],
    }


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("Bearer ak_deadbeef_not-a-real-secret", "unknown API key"),
        ("Bearer not-even-shaped-like-a-key", "unknown API key"),
        ("Bearer", "malformed Authorization header: expected 'Bearer <key>'"),
        ("Bearer two parts", "malformed Authorization header: expected 'Bearer <key>'"),
    ],
)
def test_unknown_or_malformed_key_is_401(api_client, project, header, error):
    """An unknown or malformed key is refused with 401 naming the problem."""
    response = api_client.get("/api/v1/project", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["error"] == error


def test_key_with_right_prefix_but_wrong_secret_is_401(api_client, project, make_key):
    """Knowing a key's prefix is not enough: the whole secret must match."""
    issued = make_key(project)
    forged = issued.secret[:-4] + ("AAAA" if not issued.secret.endswith("AAAA") else "BBBB")
    response = api_client.get("/api/v1/project", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json()["error"] == "unknown API key"


def test_revoked_key_is_401(api_client, project, make_key):
    """A revoked key stops working at once and the answer says it was revoked."""
    issued = make_key(project)
    assert api_client.get("/api/v1/project", **bearer(issued)).status_code == 200
    revoke_api_key(api_key=issued.api_key)
    response = api_client.get("/api/v1/project", **bearer(issued))
    assert response.status_code == 401
    assert response.json()["error"] == "this API key has been revoked"


def test_wrong_scope_is_403(api_client, project, make_key):
    """A write-only key cannot read; the 403 names the missing scope."""
    issued = make_key(project, scopes=("write",))
    response = api_client.get("/api/v1/project", **bearer(issued))
    assert response.status_code == 403
    assert response.json()["error"] == "this API key lacks the 'read' scope (it has: write)"


def test_other_projects_slug_is_403(api_client, project, other_project, make_key):
    """A key used on another project is refused with 403, whether that project exists or not."""
    issued = make_key(project)
    for slug in (other_project.slug, "no-such-project"):
        response = api_client.get(f"/api/v1/projects/{slug}", **bearer(issued))
        assert response.status_code == 403
        assert response.json()["error"] == f"this API key belongs to another project, not '{slug}'"
    own = api_client.get(f"/api/v1/projects/{project.slug}", **bearer(issued))
    assert own.status_code == 200
    assert own.json() == {"slug": "acme", "name": "Acme", "scopes": ["read", "write"]}


def test_valid_key_sees_its_project_and_records_last_use(api_client, project, make_key):
    """A valid key authenticates as its project and its last use is recorded."""
    issued = make_key(project, scopes=("read",))
    response = api_client.get("/api/v1/project", **bearer(issued))
    assert response.status_code == 200
    assert response.json()["slug"] == "acme"
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


def test_secret_is_never_stored(project):
    """No column of the api key table holds the secret, only its hash."""
    issued = create_api_key(project=project, name="ci", scopes=["write"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM analytics_apikey")
        rows = cursor.fetchall()
    assert rows
    assert all(issued.secret not in str(value) for row in rows for value in row)
    assert issued.api_key.secret_hash != issued.secret


@pytest.mark.parametrize("scopes", [[], ["admin"], ["read", "delete"]])
def test_invalid_scopes_are_refused(project, scopes):
    """Keys are created only with a non-empty subset of the known scopes."""
    with pytest.raises(ValueError, match="scopes must be a non-empty subset"):
        create_api_key(project=project, name="bad", scopes=scopes)
    assert not ApiKey.objects.exists()


def test_session_member_reads_only_own_projects(
    api_client, project, other_project, django_user_model
):
    """A logged-in member reads their project; another project's slug is 403."""
    user = django_user_model.objects.create_user("alice", password="pw-alice-123")
    add_member(project=project, user=user, role=Membership.Role.VIEWER)
    api_client.force_login(user)
    assert api_client.get("/api/v1/project").json()["slug"] == "acme"
    assert api_client.get(f"/api/v1/projects/{project.slug}").status_code == 200
    response = api_client.get(f"/api/v1/projects/{other_project.slug}")
    assert response.status_code == 403
    assert response.json()["error"] == "you are not a member of project 'globex'"


def test_management_command_prints_a_working_secret_once(api_client, project):
    """create_api_key prints a secret that authenticates; only its hash is kept."""
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key", project="acme", name="cli", scopes="read", stdout=out, stderr=err
    )
    secret = out.getvalue().strip()
    assert "shown once" in err.getvalue()
    response = api_client.get("/api/v1/project", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert ApiKey.objects.get(name="cli").scopes == ["read"]


def test_admin_creates_key_and_shows_secret_once(client, project, django_user_model):
    """Creating a key in the admin shows its secret in a message, once."""
    admin = django_user_model.objects.create_superuser("root", "", "pw-root-123")
    client.force_login(admin)
    response = client.post(
        "/admin/analytics/apikey/add/",
        {"project": project.pk, "name": "from admin", "scopes": ["write"]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    secret = next(m.split(": ")[-1] for m in messages if "not shown again" in m)
    api_key = ApiKey.objects.get(name="from admin")
    assert api_key.scopes == ["write"]
    assert secret.startswith(f"ak_{api_key.prefix}_")
    page = client.get(f"/admin/analytics/apikey/{api_key.pk}/change/")
    assert secret not in page.content.decode()
