"""Services behind /mailbox/: forwarding, vacation, app passwords, own password change."""

import datetime as dt

import pytest

from mailboxes import services
from mailboxes.models import AppPassword, Mailbox
from mailhost.errors import Conflict, Forbidden, Invalid, NotFound
from mailhost.passwords import verify_password
from nodes.models import NodeChange
from tenants.access import Actor
from tenants.models import AuditEvent
from tests.factories import TEST_PASSWORD, MailboxFactory


def holder(mailbox) -> Actor:
    return Actor(mailbox=mailbox, ip="192.0.2.7")


def test_it_sets_forwarding_for_the_holder_and_records_a_change(mailbox):
    services.mailbox_set_forwarding(
        actor=holder(mailbox),
        mailbox=mailbox,
        forward_to=["Someone@Elsewhere.TEST", "someone@elsewhere.test"],
        keep_copy=False,
    )
    mailbox.refresh_from_db()
    assert mailbox.forward_to == ["someone@elsewhere.test"]
    assert mailbox.forward_keep_copy is False
    assert NodeChange.objects.filter(kind="mailbox", object_id=mailbox.pk).exists()
    event = AuditEvent.objects.get(action="mailbox.forwarding")
    assert event.actor_label == mailbox.address and event.ip == "192.0.2.7"


def test_it_refuses_forwarding_to_itself_or_garbage(mailbox):
    with pytest.raises(Invalid) as exc:
        services.mailbox_set_forwarding(
            actor=holder(mailbox), mailbox=mailbox, forward_to=[mailbox.address], keep_copy=True
        )
    assert exc.value.field == "forward_to"
    with pytest.raises(Invalid, match="not an e-mail address"):
        services.mailbox_set_forwarding(
            actor=holder(mailbox), mailbox=mailbox, forward_to=["nope"], keep_copy=True
        )


def test_it_lets_a_holder_touch_only_their_own_mailbox(mailbox):
    other = MailboxFactory(domain=mailbox.domain)
    with pytest.raises(NotFound):
        services.mailbox_set_forwarding(
            actor=holder(mailbox), mailbox=other, forward_to=[], keep_copy=True
        )
    with pytest.raises(NotFound):
        services.app_password_create(actor=holder(mailbox), mailbox=other, name="phone")


def test_it_lets_an_operator_set_forwarding_but_not_a_viewer(mailbox, admin_user, viewer):
    services.mailbox_set_forwarding(
        actor=Actor(user=admin_user), mailbox=mailbox, forward_to=["a@b.test"], keep_copy=True
    )
    with pytest.raises(Forbidden):
        services.mailbox_set_forwarding(
            actor=Actor(user=viewer), mailbox=mailbox, forward_to=[], keep_copy=True
        )


def test_it_sets_a_dated_vacation(mailbox):
    services.mailbox_set_vacation(
        actor=holder(mailbox),
        mailbox=mailbox,
        enabled=True,
        subject=" Away ",
        body="Back soon.\r\n",
        start=dt.date(2026, 7, 1),
        end=dt.date(2026, 7, 2),
    )
    mailbox.refresh_from_db()
    assert (mailbox.vacation_subject, mailbox.vacation_body) == ("Away", "Back soon.")
    assert mailbox.vacation_enabled and mailbox.vacation_end == dt.date(2026, 7, 2)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": "two\nlines"}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"body": "x" * 4001}, "body"),
        ({"body": ""}, "body"),
        ({"start": dt.date(2026, 7, 2), "end": dt.date(2026, 7, 1)}, "end"),
    ],
)
def test_it_refuses_a_bad_vacation(mailbox, changes, field):
    args = {"enabled": True, "subject": "Away", "body": "Back soon.", "start": None, "end": None}
    with pytest.raises(Invalid) as exc:
        services.mailbox_set_vacation(actor=holder(mailbox), mailbox=mailbox, **{**args, **changes})
    assert exc.value.field == field


def test_it_creates_app_passwords_shown_once_and_revokes_them(mailbox):
    app_password, raw = services.app_password_create(
        actor=holder(mailbox), mailbox=mailbox, name="Anna's phone"
    )
    assert app_password.password_hash.startswith("{SSHA512}")
    assert verify_password(raw, app_password.password_hash)
    assert raw not in str(AuditEvent.objects.filter(action="app_password.create").values())
    services.app_password_revoke(actor=holder(mailbox), app_password=app_password)
    app_password.refresh_from_db()
    assert app_password.revoked_at is not None


def test_it_limits_app_passwords(mailbox, settings):
    for n in range(services.MAX_APP_PASSWORDS):
        AppPassword.objects.create(mailbox=mailbox, name=f"d{n}", password_hash="{X}x")
    with pytest.raises(Conflict):
        services.app_password_create(actor=holder(mailbox), mailbox=mailbox, name="one more")


def test_it_changes_the_holders_password_only_with_the_current_one(mailbox):
    with pytest.raises(Invalid) as exc:
        services.mailbox_change_own_password(
            actor=holder(mailbox),
            mailbox=mailbox,
            current_password="wrong-one-123",
            new_password="a-new-password-1",
        )
    assert exc.value.field == "current_password"
    services.mailbox_change_own_password(
        actor=holder(mailbox),
        mailbox=mailbox,
        current_password=TEST_PASSWORD,
        new_password="a-new-password-1",
    )
    stored = Mailbox.objects.get(pk=mailbox.pk).password_hash
    assert verify_password("a-new-password-1", stored)
    assert not verify_password(TEST_PASSWORD, stored)


def test_it_refuses_a_weak_new_password(mailbox):
    with pytest.raises(Invalid) as exc:
        services.mailbox_change_own_password(
            actor=holder(mailbox),
            mailbox=mailbox,
            current_password=TEST_PASSWORD,
            new_password="short",
        )
    assert exc.value.field == "new_password"
