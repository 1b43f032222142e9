"""An attacker cannot make a forged message look authenticated to the victim.

The attacker sends from the internet (an address outside the stack) a message claiming to
come from the victim's own domain, carrying Authentication-Results fields that claim our
authserv-id and a DKIM/DMARC pass. What the victim's mail client sees: exactly one
Authentication-Results field, ours, saying DMARC failed.
"""

import pytest

from tests.inbound.conftest import PASSWORD, hosted  # noqa: F401 (fixture)
from tests.inbound.support import (
    auth_results,
    deliver_from_internet,
    fresh_ip,
    in_folder,
    marked,
    message,
    outside_server,
)
from tests.stack import HOSTNAME, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db]


def test_it_strips_incoming_authentication_results_claiming_our_name(hosted, mail_stack):  # noqa: F811
    victim = hosted(prefix="arv", mailboxes=("boss", "clerk"))
    attacker = outside_server(mail_stack, f"evil-{victim.name}", fresh_ip())
    subject = marked("urgent transfer")
    forged = message(victim.address("boss"), victim.address("clerk"), subject)
    forged["Authentication-Results"] = (
        f"{HOSTNAME}; dkim=pass header.d={victim.name}; spf=pass; dmarc=pass "
        f"header.from={victim.name}"
    )
    forged["Authentication-Results"] = f"{HOSTNAME}; arc=pass"

    deliver_from_internet(mail_stack, attacker, victim.address("boss"),
                          victim.address("clerk"), forged)

    (seen,) = wait_for(lambda: in_folder(mail_stack, victim.address("clerk"), PASSWORD,
                                         "INBOX", subject) or
                       in_folder(mail_stack, victim.address("clerk"), PASSWORD, "Junk", subject))
    (ours,) = auth_results(seen)
    assert ours.startswith(HOSTNAME)
    assert "dmarc=fail" in ours and "dmarc=pass" not in ours
    assert "dkim=pass" not in ours
