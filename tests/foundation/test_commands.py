import pytest
from django.core.management import CommandError, call_command

from mailboxes.models import Domain, Mailbox
from mailhost.passwords import verify_password
from tenants.models import Organisation
from tenants.services import api_token_authenticate

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_it_provisions_from_the_command_line():
    run("createorg", "acme", "--name", "Acme Ltd")
    output = run("adddomain", "bücher.example", "--org", "acme")
    assert "Hosting bücher.example (xn--bcher-kva.example)" in output
    assert "_domainkey.xn--bcher-kva.example. TXT" in output
    output = run("addmailbox", "alice@bücher.example", "--display-name", "Alice")
    password = output.split("Password: ")[1].strip()
    mailbox = Mailbox.objects.get()
    assert mailbox.address == "alice@xn--bcher-kva.example"
    assert verify_password(password, mailbox.password_hash)
    assert Domain.objects.get().organisation == Organisation.objects.get(slug="acme")


def test_it_prints_only_the_token_and_the_token_works():
    run("createorg", "acme", "--name", "Acme")
    output = run("createapitoken", "--org", "acme", "--read-only")
    raw = output.strip()
    assert "\n" not in raw and raw.startswith("mh_")
    token = api_token_authenticate(raw)
    assert token.read_only and token.organisation.slug == "acme"
    assert token.token_hash != raw


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("createorg", "Bad Slug", "--name", "x"), "slug"),
        (("adddomain", "a b.com", "--org", "acme"), "separator"),
        (("adddomain", "ok.test", "--org", "nope"), "not found"),
        (("addmailbox", "no-at-sign"), "exactly one @"),
        (("addmailbox", "x@unhosted.test"), "not found"),
        (("createapitoken", "--org", "nope"), "not found"),
    ],
)
def test_it_reports_bad_input_as_a_clear_error(args, message):
    Organisation.objects.create(slug="acme", name="Acme")
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_it_creates_the_first_staff_user_make_up_prints_and_it_can_sign_in(client, tmp_path):
    password_file = tmp_path / "admin-password"
    run("ensurestaff", "--email", "admin@localhost", "--password-file", str(password_file))
    run("ensurestaff", "--email", "admin@localhost", "--password-file", str(password_file))
    password = password_file.read_text().strip()
    assert oct(password_file.stat().st_mode & 0o777) == "0o600" and len(password) == 20
    response = client.post("/accounts/login/", {"login": "admin@localhost", "password": password})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
