"""The invitation e-mail, sent by every door that invites (pages, staff API)."""

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from tenants.models import Invitation


def send_invitation(*, invitation: Invitation, link: str, inviter: str) -> None:
    """Mail the invitation link once the transaction that created the invitation commits."""
    organisation = invitation.organisation
    body = (
        f"{inviter} invited you to manage mail for {organisation.name} on Mailhost "
        f"as {invitation.get_role_display().lower()}.\n\nAccept within 7 days: {link}\n"
    )
    transaction.on_commit(
        lambda: send_mail(
            f"Invitation to {organisation.name} on Mailhost",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
            fail_silently=True,
        )
    )
