"""The node's certificates from the portal's side: which it needs (the mail host and every live
domain's service hosts), renewing them on the node, and what /health and the dashboard show.

The ACME work itself is node-side (mailhost/backend/certificates.py) and runs in the node's
Celery worker (`nodes.renew_certificates`, on the node's queue), where the files live. The live
domains come from the apps through nodes.snapshot (this module imports no app).
"""

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail

from mailhost.backend import certificates
from mailhost.backend.certificates import AcmeSettings, CertSpec, RunResult
from nodes import snapshot
from nodes.models import MailNode
from nodes.reconcile import apply_edge_sites

logger = logging.getLogger(__name__)


def acme_settings() -> AcmeSettings:
    return AcmeSettings(
        directory_url=settings.MAILHOST_ACME_DIRECTORY_URL,
        email=settings.MAILHOST_ACME_EMAIL,
        ca_bundle=settings.MAILHOST_ACME_CA_BUNDLE,
        renew_before_days=settings.MAILHOST_ACME_RENEW_BEFORE_DAYS,
        orders_per_run=settings.MAILHOST_ACME_ORDERS_PER_RUN,
        alert_days=settings.MAILHOST_CERT_ALERT_DAYS,
    )


def node_certificates(node: MailNode) -> list[CertSpec]:
    return certificates.wanted(settings.MAILHOST_HOSTNAME, snapshot.live_domain_names(node))


def renew_node_certificates(node: MailNode) -> RunResult:
    """Obtain what is due on this node; a new domain certificate goes into the edge's sites at
    once (the watcher reloads the edge for renewals of certificates it already names)."""
    result = certificates.renew_due(acme_settings(), Path(node.state_dir), node_certificates(node))
    if any(name != certificates.MAIL_HOST for name in result.issued):
        apply_edge_sites(node)
    return result


@dataclass(frozen=True)
class CertificateStatus:
    name: str
    names: tuple[str, ...]
    not_after: dt.datetime | None
    days_left: int | None
    issuer: str
    failures: int
    last_error: str
    alert: bool  # renewal keeps failing and it expires within MAILHOST_CERT_ALERT_DAYS


def certificate_statuses(node: MailNode, now: dt.datetime | None = None) -> list[CertificateStatus]:
    """Every certificate the node needs, with its expiry as read from the node's files."""
    now = now or dt.datetime.now(dt.UTC)
    state_dir = Path(node.state_dir)
    state = certificates.state_load(state_dir)
    statuses = []
    for spec in node_certificates(node):
        info = certificates.read_cert(state_dir / spec.cert)
        record = state.get(spec.name, {})
        days = (info.not_after - now).days if info else None
        failing = record.get("failures", 0) > 0
        statuses.append(CertificateStatus(
            name=spec.name, names=spec.names,
            not_after=info.not_after if info else None, days_left=days,
            issuer=info.issuer if info else "",
            failures=record.get("failures", 0), last_error=record.get("last_error", ""),
            alert=failing and (days is None or days <= settings.MAILHOST_CERT_ALERT_DAYS),
        ))
    return statuses


ALERT_EVERY = dt.timedelta(days=1)


def alert_staff(node: MailNode, now: dt.datetime | None = None) -> list[str]:
    """Mail staff (superusers) about each certificate whose renewal keeps failing and that
    expires within MAILHOST_CERT_ALERT_DAYS: at most once a day per certificate. Returns the
    certificates named."""
    failing = [s for s in certificate_statuses(node, now) if s.alert]
    due = [s for s in failing if cache.add(f"cert-alert:{node.pk}:{s.name}", 1,
                                         int(ALERT_EVERY.total_seconds()))]
    if not due:
        return []
    recipients = sorted(set(get_user_model().objects.filter(is_superuser=True, is_active=True)
                            .exclude(email="").values_list("email", flat=True)))
    lines = [f"Certificate renewal on mail node {node.name} keeps failing:", ""]
    for status in due:
        expiry = status.not_after.date().isoformat() if status.not_after else "no certificate"
        lines.append(f"- {', '.join(status.names)}: expires {expiry} "
                     f"({status.failures} failed attempts). Last error: {status.last_error}")
    lines += ["", "Clients will refuse these names once the certificate expires."]
    if recipients:
        try:
            send_mail(f"[Mailhost] certificates on {node.name} are not renewing",
                      "\n".join(lines), None, recipients)
        except OSError as exc:
            logger.warning("certificate alert for %s not sent: %s", node.name, exc)
    logger.warning("\n".join(lines))
    return [s.name for s in due]
