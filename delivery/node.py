"""The one place delivery/ reaches the node control plane (MailNode and its configuration)."""

import logging
import re
import smtplib
from pathlib import Path

from mailhost.backend.config import NodeConfig
from mailhost.backend.quotas import QUOTAS_DB, refusals
from mailhost.errors import Invalid, QuotaExceeded, Unavailable
from nodes.changes import record_change
from nodes.models import MailNode, NodeChange

logger = logging.getLogger(__name__)
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
        raise _not_queued(code, reply.decode(errors="replace"))
    found = _QUEUED_AS.search(reply)
    return found.group(1).decode() if found else ""


def _refused(rcpt: str, code: int, reply: bytes) -> Exception:
    text = f"The mail node refused <{rcpt}>: {code} {reply.decode(errors='replace')}"
    if 500 <= code < 600:
        return Invalid(text, field="to", code="recipient_refused")
    return Unavailable(text)


def all_nodes() -> list[MailNode]:
    return list(MailNode.objects.order_by("name"))


def node_get(node_id: int) -> MailNode | None:
    return MailNode.objects.filter(pk=node_id).first()


def quotas_store(node: MailNode) -> Path:
    return Path(node.state_dir) / QUOTAS_DB


def quota_refusals() -> dict[str, dict[tuple[str, str], int]]:
    """{node name: {(scope, reason): messages refused}}, as each node's quota store counts."""
    return {mail_node.name: refusals(quotas_store(mail_node))
            for mail_node in MailNode.objects.all()}


def record_outbound_change(organisation) -> None:
    """Inside the caller's transaction: the organisation's outbound policy (suppressions,
    quotas, application senders) changed, so every node serving its domains re-renders its
    outbound stores (nodes.reconcile, on commit)."""
    for node_id in sorted(set(organisation.domains.values_list("node_id", flat=True))):
        record_change(node_id=node_id, kind=NodeChange.Kind.OUTBOUND, object_id=organisation.id)


_RETRY_IN = re.compile(r"retry in (\d+) s")


def _not_queued(code: int, reply: str) -> Exception:
    """The node's answer to DATA as an API error: a sending quota is a 429 (hourly or daily,
    a full queue; with when to retry) or a 422 (too many recipients); anything else a 503."""
    if reply.startswith("4.7.1") and ("sending limit" in reply or "queued messages" in reply):
        found = _RETRY_IN.search(reply)
        return QuotaExceeded(f"The node refused the message: {code} {reply}",
                             retry_after=int(found.group(1)) if found else 60)
    if reply.startswith("5.7.1") and "recipients per message" in reply:
        return Invalid(f"The node refused the message: {code} {reply}", field="to",
                       code="quota_exceeded")
    return Unavailable(f"The mail node did not queue the message: {code} {reply}")
