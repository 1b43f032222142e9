"""The one place delivery/ reaches the node control plane (MailNode and its configuration).

The control plane is moving from mailboxes/ into nodes/; keeping every node import of this
app here means one file to change.
"""

import re
import smtplib
from pathlib import Path

from mailboxes.models import MailNode
from mailhost.backend.config import EVENTS_DB, NodeConfig
from mailhost.backend.suppressions import SUPPRESSIONS_DB
from mailhost.errors import Invalid, Unavailable

_QUEUED_AS = re.compile(rb"queued as ([0-9A-Za-z]+)")
INJECT_TIMEOUT = 30


def internal_address(node: MailNode) -> tuple[str, int]:
    """The node's loopback-only re-injection listener: its mail is checked by the sender-policy
    milter and signed by OpenDKIM for the envelope sender's domain, like Dovecot's redirects."""
    cfg = NodeConfig.from_settings(node.state_dir)
    return "127.0.0.1", cfg.ports["internal"]


def inject(node: MailNode, *, envelope_from: str, recipients: list[str], raw: bytes) -> str:
    """Hand one message to the node's Postfix; returns its queue id. Unavailable when the node
    does not take it (nothing was queued then: Postfix queues only after a 250 to DATA)."""
    host, port = internal_address(node)
    try:
        with smtplib.SMTP(host, port, timeout=INJECT_TIMEOUT) as client:
            client.ehlo("portal.mailhost.invalid")
            code, reply = client.mail(envelope_from)
            if code != 250:
                raise Unavailable(f"The mail node refused the sender: {code} {reply.decode()}")
            for rcpt in recipients:
                code, reply = client.rcpt(rcpt)
                if code not in (250, 251):
                    raise _refused(rcpt, code, reply)
            code, reply = client.data(raw)
    except (OSError, smtplib.SMTPException) as exc:
        raise Unavailable(f"The mail node is not reachable ({exc}); retry shortly.") from exc
    if code != 250:
        raise Unavailable(f"The mail node did not queue the message: {code} {reply.decode()}")
    found = _QUEUED_AS.search(reply)
    return found.group(1).decode() if found else ""


def _refused(rcpt: str, code: int, reply: bytes) -> Exception:
    text = f"The mail node refused <{rcpt}>: {code} {reply.decode(errors='replace')}"
    if 500 <= code < 600:
        return Invalid(text, field="to", code="recipient_refused")
    return Unavailable(text)


def events_store(node: MailNode) -> tuple[str, Path]:
    """(node name, path of the node's event store written by its event agent)."""
    return node.name, Path(node.state_dir) / EVENTS_DB


def all_nodes() -> list[MailNode]:
    return list(MailNode.objects.order_by("name"))


def suppressions_store(node: MailNode) -> Path:
    return Path(node.state_dir) / SUPPRESSIONS_DB


def node_get(node_id: int) -> MailNode | None:
    return MailNode.objects.filter(pk=node_id).first()
