"""Display names and other one-line text refuse bidirectional overrides and line separators.

The attack: a name that displays differently from what it is ("Trojan Source") or breaks into
extra lines where it is shown or written (lists, audit rows, mail headers, Sieve scripts). Each
door — the API, the pages, the mailbox portal, CSV import, Django admin, the commands — gets a
clear 422 or form error, and nothing is written.
"""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from mailboxes.models import AppPassword, Mailbox
from mailhost.errors import Invalid
from mailhost.passwords import hash_password
from tenants.access import SYSTEM
from tenants.models import ApiToken, Organisation
from tenants.services import organisation_create, user_create_staff
from tests.api.conftest import make_tenant
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

HOSTILE = {
    "LRE": "\u202a", "RLE": "\u202b", "PDF": "\u202c", "LRO": "\u202d", "RLO": "\u202e",
    "LRI": "\u2066", "RLI": "\u2067", "FSI": "\u2068", "PDI": "\u2069",
    "LINE SEPARATOR": "\u2028", "PARAGRAPH SEPARATOR": "\u2029", "NEL": "\u0085",
    "BEL": "\u0007", "CSI": "\u009b", "DEL": "\u007f", "LF": "\n",
}
CASES = pytest.mark.parametrize("char", list(HOSTILE.values()), ids=list(HOSTILE))
FINE = "Zoë Łukasz-Ødegård 王小明 عبد\u200fالله"  # RLM is an implicit mark, not an override


@pytest.fixture
def tenant(db):
    return make_tenant("acme")


def _owner_client(tenant) -> Client:
    user = MembershipFactory(organisation=tenant.organisation, role="owner").user
    user.save()
    client = Client()
    client.force_login(user)
    return client


@CASES
def test_it_refuses_a_hostile_mailbox_display_name_in_the_api(tenant, char):
    response = tenant.rw.post(
        "/mailboxes", {"address": "bob@acme.test", "display_name": f"Bob{char}gnp.exe"}
    )
    assert response.status_code == 422, response.content
    assert response.json()["field"] == "display_name"
    assert "U+" in response.json()["detail"]
    assert not Mailbox.objects.filter(local_part="bob").exists()

    response = tenant.rw.patch("/mailboxes/alice@acme.test", {"display_name": f"A{char}"})
    assert response.status_code == 422
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.display_name == "Alice"


def test_it_refuses_a_hostile_row_of_a_bulk_create(tenant):
    body = {"mailboxes": [{"address": "ok@acme.test", "display_name": FINE},
                          {"address": "bad@acme.test", "display_name": "x\u202ey"}]}
    response = tenant.rw.post("/mailboxes/bulk", body)
    assert response.status_code == 422
    assert response.json()["field"] == "mailboxes[1].display_name"
    assert not Mailbox.objects.filter(local_part__in=["ok", "bad"]).exists()


def test_it_accepts_real_names_in_any_script(tenant):
    response = tenant.rw.post("/mailboxes", {"address": "zoe@acme.test", "display_name": FINE})
    assert response.status_code == 201, response.content
    assert Mailbox.objects.get(local_part="zoe").display_name == FINE


@CASES
def test_it_refuses_a_hostile_name_in_the_pages(tenant, char):
    client = _owner_client(tenant)
    response = client.post(
        "/mail-admin/acme/mailboxes/new/",
        {"local_part": "bob", "domain": "acme.test", "display_name": f"Bob{char}x"},
    )
    assert response.status_code == 422
    assert not Mailbox.objects.filter(local_part="bob").exists()
    response = client.post(
        "/mail-admin/acme/mailboxes/alice@acme.test/",
        {"display_name": f"Alice{char}x", "quota_mb": 100},
    )
    assert response.status_code == 422
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.display_name == "Alice"
    tokens = ApiToken.objects.count()
    assert client.post("/mail-admin/acme/tokens/", {"name": f"ci{char}x"}).status_code == 422
    assert ApiToken.objects.count() == tokens


@pytest.mark.parametrize("char", ["\u202e", "\u2028", "\u0085"])
def test_it_refuses_a_hostile_device_name_and_vacation_subject_in_the_mailbox_portal(
    tenant, char, clean_rate_limits
):
    tenant.mailbox.password_hash = hash_password("alice-password-1", rounds=4)
    tenant.mailbox.save(update_fields=["password_hash"])
    holder = Client()
    login = {"address": "alice@acme.test", "password": "alice-password-1"}
    assert holder.post("/mailbox/login/", login).status_code == 302
    response = holder.post("/mailbox/app-passwords/", {"name": f"iPhone{char}x"})
    assert response.status_code == 422 and b"U+" in response.content
    assert not AppPassword.objects.filter(mailbox=tenant.mailbox).exists()
    response = holder.post(
        "/mailbox/vacation/", {"enabled": "on", "subject": f"Away{char}Bcc: x", "body": "Back soon"}
    )
    assert response.status_code == 422
    tenant.mailbox.refresh_from_db()
    assert tenant.mailbox.vacation_enabled is False


def test_it_refuses_a_hostile_display_name_in_a_csv_import(tenant):
    from mailboxes.services import mailbox_import_run, mailbox_import_start
    from tenants.access import Actor

    owner = MembershipFactory(organisation=tenant.organisation, role="owner").user
    content = "address,display_name\nbob@acme.test,Bob\u202eexe\ncarol@acme.test,Carol\n"
    job = mailbox_import_start(
        actor=Actor(user=owner), organisation=tenant.organisation, filename="people.csv",
        content=content.encode(),
    )
    job = mailbox_import_run(import_id=job.pk)
    assert job.failed == 1 and job.created == 1
    assert "U+202E" in str(job.errors)
    assert not Mailbox.objects.filter(local_part="bob").exists()
    with pytest.raises(Invalid):
        mailbox_import_start(
            actor=Actor(user=owner), organisation=tenant.organisation,
            filename="people\u202eslx.csv", content=content.encode(),
        )


def test_it_refuses_a_hostile_organisation_name_from_the_command_and_the_admin(db):
    with pytest.raises(Invalid):
        organisation_create(actor=SYSTEM, slug="evil", name="Acme\u202eLtd")
    with pytest.raises(CommandError):
        call_command("createorg", "evil", "--name", "Acme\u2028Ltd")
    assert not Organisation.objects.filter(slug="evil").exists()

    staff = Client()
    staff.force_login(user_create_staff(email="staff@ops.test", password="staff-password-1"))
    organisation = organisation_create(actor=SYSTEM, slug="acme", name="Acme")
    response = staff.post(
        f"/admin/tenants/organisation/{organisation.pk}/change/",
        {"name": "Acme\u202eLtd", "slug": "acme", "created_at_0": "2026-01-01",
         "created_at_1": "00:00:00", "memberships-TOTAL_FORMS": 0,
         "memberships-INITIAL_FORMS": 0},
    )
    assert response.status_code == 200 and b"one line of plain text" in response.content
    organisation.refresh_from_db()
    assert organisation.name == "Acme"
