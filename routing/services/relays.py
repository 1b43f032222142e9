"""Relays (smarthosts): set one for a domain or an organisation, remove it, and send a test
message through it. Every change reaches the node as its relay tables (routing/snapshot.py)."""

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from delivery.services.webhooks import resolve
from identity.addresses import parse_networks, refusal
from mailboxes.models import Domain
from mailhost.backend.relays import UnsafeRelay, check_credentials, check_host
from mailhost.crypto import decrypt, encrypt
from mailhost.errors import Invalid, NotFound
from mailhost.names import InvalidName, normalise_address, normalise_domain
from nodes.changes import record_change
from nodes.models import NodeChange
from routing.models import Relay, TlsMode
from tenants.access import Actor, require_write
from tenants.audit import audit_record
from tenants.models import Organisation

TEST_TIMEOUT = 20


@dataclass(frozen=True)
class RelayInput:
    host: str
    port: int = 587
    tls_mode: str = TlsMode.REQUIRED
    username: str = ""
    password: str | None = None  # None: keep the stored one (an edit that leaves it out)
    spf_include: str = ""


def _clean(data: RelayInput) -> RelayInput:
    try:
        host = normalise_domain(data.host) if not _is_ip(data.host) else data.host.strip()
        check_host(host)
    except (InvalidName, UnsafeRelay) as exc:
        raise Invalid(f"The relay host is not a host name or an IP address: {exc}",
                      field="host") from None
    if not isinstance(data.port, int) or not 1 <= data.port <= 65535:
        raise Invalid("The port is 1–65535 (submission is 587, SMTPS 465).", field="port")
    if data.tls_mode not in TlsMode.values:
        raise Invalid(f"The TLS mode is one of {', '.join(TlsMode.values)}.", field="tls_mode")
    include = (data.spf_include or "").strip()
    if include:
        try:
            include = normalise_domain(include)
        except InvalidName as exc:
            raise Invalid(f"The SPF include is not a domain name: {exc}",
                          field="spf_include") from None
    return RelayInput(host=host, port=data.port, tls_mode=data.tls_mode,
                      username=(data.username or "").strip(), password=data.password,
                      spf_include=include)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address((text or "").strip())
        return True
    except ValueError:
        return False


def check_reachable(host: str) -> list:
    """The relay's addresses, if the node and the portal may connect to them: public ones, or
    in MAILHOST_RELAY_ALLOWED_NETWORKS. A relay on a private or loopback address would turn the
    mail host into a way into its own network (Redis, the database, the node's services)."""
    try:
        addresses = [ipaddress.ip_address(host)] if _is_ip(host) else resolve(host)
    except Exception as exc:  # delivery.hooks.Refused: the name did not resolve in time
        raise Invalid(str(exc), field="host") from None
    if not addresses:
        raise Invalid(f"The relay host {host} has no address (A or AAAA).", field="host")
    allowed = parse_networks(settings.MAILHOST_RELAY_ALLOWED_NETWORKS)
    for address in addresses:
        reason = refusal(address, allowed)
        if reason:
            raise Invalid(f"The relay host {host} is {reason} ({address}); relays must be on "
                          "public addresses.", field="host")
    return addresses


def _snapshot(relay: Relay) -> dict:
    return {"host": relay.host, "port": relay.port, "tls_mode": relay.tls_mode,
            "username": relay.username, "password": "set" if relay.password_encrypted else "",
            "spf_include": relay.spf_include}


def _nodes_of(organisation: Organisation, domain: Domain | None) -> set[int]:
    if domain is not None:
        return {domain.node_id}
    return set(organisation.domains.values_list("node_id", flat=True))


def _record(relay_id: int, node_ids: set[int]) -> None:
    for node_id in sorted(node_ids):
        record_change(node_id=node_id, kind=NodeChange.Kind.RELAY, object_id=relay_id)


def relay_set(*, actor: Actor, organisation: Organisation, domain: Domain | None = None,
              data: RelayInput) -> tuple[Relay, bool]:
    """Create or replace the relay of `domain` (or, without one, of the organisation); True
    when it is new. A password left out (None) keeps the stored one."""
    require_write(actor, organisation.id)
    if domain is not None and domain.organisation_id != organisation.id:
        raise NotFound("That domain was not found.")
    data = _clean(data)
    check_reachable(data.host)
    with transaction.atomic():
        relay = (Relay.objects.select_for_update()
                 .filter(organisation=organisation, domain=domain).order_by("pk").first())
        created = relay is None
        before = None if created else _snapshot(relay)
        relay = relay or Relay(organisation=organisation, domain=domain)
        password = data.password
        if password is None:
            if data.username and relay.username != data.username:
                raise Invalid("A new user name needs its password.", field="password")
            password = decrypt(relay.password_encrypted).decode() if data.username and \
                relay.password_encrypted else ""
        try:
            check_credentials(data.username, password)
        except UnsafeRelay as exc:
            raise Invalid(f"{exc}.", field="password" if data.username else "username") from None
        relay.host, relay.port, relay.tls_mode = data.host, data.port, data.tls_mode
        relay.username, relay.spf_include = data.username, data.spf_include
        relay.password_encrypted = encrypt(password.encode()) if password else ""
        relay.updated_at = timezone.now()
        relay.save()
        audit_record(actor=actor, organisation_id=organisation.id,
                     action="relay.create" if created else "relay.update", target_type="relay",
                     target=relay.scope, before=before, after=_snapshot(relay))
        _record(relay.pk, _nodes_of(organisation, domain))
    return relay, created


def relay_delete(*, actor: Actor, organisation: Organisation, relay_id: int) -> None:
    """Remove a relay: its domains' mail goes through the organisation's relay, the default
    one, or direct, from the next reconcile on."""
    require_write(actor, organisation.id)
    with transaction.atomic():
        relay = Relay.objects.select_for_update(of=("self",)).filter(
            pk=relay_id, organisation=organisation).select_related("domain").order_by().first()
        if relay is None:
            raise NotFound("That relay was not found.")
        nodes = _nodes_of(organisation, relay.domain)
        audit_record(actor=actor, organisation_id=organisation.id, action="relay.delete",
                     target_type="relay", target=relay.scope, before=_snapshot(relay))
        relay.delete()
        _record(relay_id, nodes)


@dataclass(frozen=True)
class TestResult:
    ok: bool
    stage: str  # connect, starttls, auth, mail, rcpt, data, done
    reply: str  # the relay's last reply, e.g. "535 5.7.8 Authentication failed"


def relay_test(*, actor: Actor, organisation: Organisation, relay_id: int,
               to: str) -> TestResult:
    """Send a short test message straight to the relay, with its TLS mode and login, from
    postmaster@ of its domain (or of the organisation's first domain); report how far it got
    and the relay's reply. Audited; nothing is queued on the node."""
    require_write(actor, organisation.id)
    relay = Relay.objects.filter(pk=relay_id, organisation=organisation).select_related(
        "domain").first()
    if relay is None:
        raise NotFound("That relay was not found.")
    try:
        to = normalise_address(to)
    except InvalidName as exc:
        raise Invalid(f"{exc}", field="to") from None
    domain = relay.domain or organisation.domains.order_by("name").first()
    if domain is None:
        raise Invalid("The organisation has no domain to send the test from.", field="to")
    address = check_reachable(relay.host)[0]
    result = _converse(relay, str(address), f"postmaster@{domain.name}", to)
    with transaction.atomic():
        audit_record(actor=actor, organisation_id=organisation.id, action="relay.test",
                     target_type="relay", target=relay.scope,
                     after={"to": to, "ok": result.ok, "stage": result.stage,
                            "reply": result.reply[:300]})
    return result


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode(errors="replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def _converse(relay: Relay, address: str, sender: str, to: str) -> TestResult:
    """One SMTP conversation, connected to the address checked a moment ago (no second DNS
    answer can move it elsewhere); TLS names the relay's host."""
    stage = "connect"
    context = ssl.create_default_context()
    if relay.tls_mode != TlsMode.VERIFIED:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with smtplib.SMTP(timeout=TEST_TIMEOUT) as client:
            client._host = relay.host  # the name TLS checks the certificate against
            code, text = client.connect(address, relay.port)
            if code != 220:
                return TestResult(False, stage, _reply(code, text))
            client.ehlo(settings.MAILHOST_HOSTNAME)
            if client.has_extn("starttls"):
                stage = "starttls"
                code, text = client.starttls(context=context)
                client.ehlo(settings.MAILHOST_HOSTNAME)
            elif relay.tls_mode != TlsMode.OPPORTUNISTIC:
                return TestResult(False, "starttls", "The relay does not offer STARTTLS.")
            if relay.username:
                stage = "auth"
                if not client.sock or not isinstance(client.sock, ssl.SSLSocket):
                    return TestResult(False, stage, "No TLS: the password is never sent plain.")
                code, text = client.login(relay.username,
                                          decrypt(relay.password_encrypted).decode())
            stage = "mail"
            code, text = client.mail(sender)
            if code != 250:
                return TestResult(False, stage, _reply(code, text))
            stage = "rcpt"
            code, text = client.rcpt(to)
            if code not in (250, 251):
                return TestResult(False, stage, _reply(code, text))
            stage = "data"
            code, text = client.data(_test_message(sender, to))
            if code != 250:
                return TestResult(False, stage, _reply(code, text))
            return TestResult(True, "done", _reply(code, text))
    except smtplib.SMTPResponseException as exc:
        return TestResult(False, stage, _reply(exc.smtp_code, exc.smtp_error))
    except (OSError, smtplib.SMTPException) as exc:
        return TestResult(False, stage, f"{type(exc).__name__}: {exc}")


def _test_message(sender: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, to
    msg["Subject"] = "Relay test from the mail host"
    msg["Date"], msg["Message-ID"] = formatdate(), make_msgid(domain=sender.split("@")[1])
    msg.set_content("This message tests the relay's settings. No reply is needed.\n")
    return msg.as_bytes()
