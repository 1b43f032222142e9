import pytest
from django.core.management import CommandError, call_command

from tests.identity.support import fragment_for

pytestmark = pytest.mark.django_db


def test_it_prints_the_zone_fragment(domain, capsys, mail_settings):
    mail_settings.MAILHOST_DNS_TTL = 300
    call_command("checkdns", "good.test", "--zone")
    assert capsys.readouterr().out == fragment_for(domain)


@pytest.mark.dns
def test_it_checks_a_domain_and_fails_in_strict_mode_when_something_is_wrong(
    dns_world, domain, capsys
):
    dns_world({"good.test": fragment_for(domain)})
    with pytest.raises(CommandError, match=r"1 record\(s\) not ok"):
        call_command("checkdns", "good.test", "--strict")  # the policy host has no HTTPS here
    out = capsys.readouterr().out
    assert "ok       MX    good.test: Mail is delivered to mail.provider.test." in out
    assert "wrong    CNAME mta-sts.good.test: Fetching the policy:" in out


def test_it_rotates_and_advances_from_the_command_line(domain, capsys):
    call_command("rotatedkim", "good.test")
    assert "pending publication" in capsys.readouterr().out
    call_command("rotatedkim", "good.test", "--advance")
    assert capsys.readouterr().out == "Nothing is due yet.\n"
    call_command("rotatedkim", "good.test", "--advance", "--force")
    assert "signing" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not found"):
        call_command("rotatedkim", "nowhere.test")
