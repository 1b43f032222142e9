from tenants.models import ApiToken
from tests.factories import OrganisationFactory

BASE = "/mail-admin/acme/tokens/"


def make_token(org, name="sync"):
    return ApiToken.objects.create(
        organisation=org, name=name, token_hash=ApiToken.hash(name + str(org.pk)), hint="mh_xxxxxxx"
    )


def test_it_lists_tokens_in_constant_queries(owner_client, org, assert_constant_queries):
    make_token(org, "first")
    assert_constant_queries(
        owner_client, BASE, lambda: [make_token(org, f"t{n}") for n in range(12)]
    )


def test_it_creates_a_token_shown_once(admin_client_, org):
    response = admin_client_.post(
        BASE, {"name": "billing", "read_only": "on", "expires_in_days": "30"}
    )
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    raw = response.context["raw"]
    token = ApiToken.objects.get(name="billing")
    assert token.token_hash == ApiToken.hash(raw) and token.read_only and token.expires_at
    assert raw.encode() not in admin_client_.get(BASE).content


def test_it_refuses_a_bad_token(admin_client_, org):
    assert admin_client_.post(BASE, {"name": ""}).status_code == 422
    assert admin_client_.post(BASE, {"name": "x", "expires_in_days": "0"}).status_code == 422


def test_it_confirms_then_revokes(admin_client_, org):
    token = make_token(org)
    assert b"Revoke the API token" in admin_client_.get(f"{BASE}{token.pk}/revoke/").content
    assert admin_client_.post(f"{BASE}{token.pk}/revoke/").status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_it_forbids_a_viewer(viewer_client, org):
    token = make_token(org)
    assert viewer_client.get(BASE).status_code == 200
    assert b"Create token" not in viewer_client.get(BASE).content
    assert viewer_client.post(BASE, {"name": "x"}).status_code == 403
    assert viewer_client.post(f"{BASE}{token.pk}/revoke/").status_code == 403


def test_it_is_404_for_another_organisations_token(owner_client, stranger_client, org):
    token = make_token(org)
    assert stranger_client.post(f"{BASE}{token.pk}/revoke/").status_code == 404
    foreign = make_token(OrganisationFactory(), "foreign")
    assert owner_client.post(f"{BASE}{foreign.pk}/revoke/").status_code == 404
