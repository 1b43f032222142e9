"""System checks for the mailbox settings, with stable ids (mailboxes.E001…, mailboxes.W001…)."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from mailhost.backend.config import OPERATOR_MAILBOX
from mailhost.backend.render import ROLE_LOCAL_PARTS


@register()
def check_operator_mailbox(app_configs, **kwargs):
    mailbox = settings.MAILHOST_OPERATOR_MAILBOX
    if mailbox and (not OPERATOR_MAILBOX.match(mailbox) or ".." in mailbox):
        return [Error(
            f"MAILHOST_OPERATOR_MAILBOX {mailbox!r} is not a plain address (lower-case letters, "
            "digits and . _ + - before the @, a host name after it).",
            id="mailboxes.E001",
        )]
    if mailbox.partition("@")[0] in ROLE_LOCAL_PARTS:
        return [Warning(
            f"MAILHOST_OPERATOR_MAILBOX is {mailbox}, a role address: if its domain is hosted "
            "here and has no mailbox of that name, role mail has nowhere to go.",
            hint="Use a real mailbox.",
            id="mailboxes.W002",
        )]
    return []


@register(deploy=True)
def check_operator_mailbox_set(app_configs, **kwargs):
    """Production (`check --deploy`): without it, some domains' postmaster@ may bounce."""
    if not settings.MAILHOST_OPERATOR_MAILBOX:
        return [Warning(
            "MAILHOST_OPERATOR_MAILBOX is empty: postmaster@ and abuse@ of a domain whose "
            "organisation has chosen no mailbox for them, and whose first admin has no mailbox "
            "here, are refused (RFC 5321 4.5.1 requires postmaster@).",
            hint="Set it to a mailbox of yours, e.g. abuse-desk@your-company.example.",
            id="mailboxes.W001",
        )]
    return []
