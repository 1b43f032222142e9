"""The node's certificates: which it needs, when each is due, and obtaining them over ACME.

Certificates (all paths relative to the state dir):

  tls/cert.pem, tls/key.pem                 the mail host name: Postfix, Dovecot and the edge
  acme/live/<domain>/cert.pem, key.pem      one per live domain for its mta-sts., autoconfig.
                                            and autodiscover. names (one order, three names):
                                            the edge only
  acme/account.json                         the ACME account (key and URL), root only
  acme/state.json                           failures and back-off per certificate

Obtaining uses certbot's `acme` library: an order per certificate, HTTP-01 answered from the
edge's webroot (`acme/webroot/.well-known/acme-challenge/<token>`), a fresh key per issue.
Rate limits: a domain's three names share one order and one certificate, at most
`orders_per_run` orders are placed per run (most urgent first), and a certificate whose order
failed is not tried again before its back-off (5 min, doubling, at most a day) has passed.

Operator-provided certificates: leave MAILHOST_ACME_DIRECTORY_URL empty and put the files in
the places above; the certificate watcher (certwatch.py) reloads their daemons when they change.
"""

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailhost.backend.edge import ACME_LIVE, ACME_WEBROOT, NODE_CERT, NODE_KEY, SERVICE_LABELS
from mailhost.backend.files import write_atomic

logger = logging.getLogger(__name__)

ACME_ACCOUNT = "acme/account.json"
ACME_STATE = "acme/state.json"
CHALLENGE_DIR = f"{ACME_WEBROOT}/.well-known/acme-challenge"
MAIL_HOST = "mail-host"  # the name of the mail host's certificate in state and reports
BACKOFF_FIRST = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(days=1)
_SAFE_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class CertificateError(RuntimeError):
    """Obtaining a certificate failed; the message says for which names and why."""


@dataclass(frozen=True)
class AcmeSettings:
    """How this node talks to its CA. `directory_url` "" turns ACME off (operator-provided
    certificates). `ca_bundle`: a CA file to trust for the ACME server's own HTTPS (tests)."""

    directory_url: str = ""
    email: str = ""
    ca_bundle: str = ""
    renew_before_days: int = 30
    orders_per_run: int = 10
    alert_days: int = 14


@dataclass(frozen=True)
class CertSpec:
    """A certificate the node needs: a name for it, the DNS names in it, where it lives, and the
    daemons that read it (reloaded when it changes)."""

    name: str
    names: tuple[str, ...]
    cert: str
    key: str
    daemons: tuple[str, ...]


def mail_host_spec(hostname: str) -> CertSpec:
    return CertSpec(MAIL_HOST, (hostname,), NODE_CERT, NODE_KEY, ("postfix", "dovecot", "edge"))


def domain_spec(domain: str) -> CertSpec:
    if not _SAFE_DOMAIN.match(domain) or ".." in domain:
        raise ValueError(f"refusing a certificate path for {domain!r}")
    return CertSpec(domain, tuple(f"{label}.{domain}" for label in SERVICE_LABELS),
                    f"{ACME_LIVE}/{domain}/cert.pem", f"{ACME_LIVE}/{domain}/key.pem", ("edge",))


def wanted(hostname: str, domains: list[str]) -> list[CertSpec]:
    return [mail_host_spec(hostname), *(domain_spec(d) for d in sorted(domains))]


# --- what is on disk ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CertInfo:
    names: tuple[str, ...]
    not_after: dt.datetime
    serial: int
    self_signed: bool
    issuer: str


def read_cert(path: Path) -> CertInfo | None:
    """The first certificate of a PEM file; None if there is none (missing or unreadable)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(sans.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return CertInfo(names=names, not_after=cert.not_valid_after_utc, serial=cert.serial_number,
                    self_signed=cert.issuer == cert.subject, issuer=cert.issuer.rfc4514_string())


def due(info: CertInfo | None, spec: CertSpec, now: dt.datetime, renew_before: dt.timedelta,
        ) -> bool:
    """Whether `spec` needs a (new) certificate: none, self-signed, missing a name, or expiring
    within `renew_before`."""
    if info is None or info.self_signed or not set(spec.names) <= set(info.names):
        return True
    return info.not_after - now <= renew_before


def state_load(state_dir: Path) -> dict[str, dict]:
    try:
        return json.loads((state_dir / ACME_STATE).read_bytes())
    except (FileNotFoundError, ValueError):
        return {}


def _state_save(state_dir: Path, state: dict[str, dict]) -> None:
    write_atomic(state_dir / ACME_STATE, json.dumps(state, sort_keys=True, indent=1).encode(),
                 mode=0o600)


# --- obtaining -------------------------------------------------------------------------------


def _account_key(state_dir: Path):
    """The ACME account key (created once) and the account's URL if registered."""
    import josepy as jose

    path = state_dir / ACME_ACCOUNT
    try:
        data = json.loads(path.read_bytes())
        key = serialization.load_pem_private_key(data["key"].encode(), password=None)
        return jose.JWKEC(key=key), data.get("uri", "")
    except (FileNotFoundError, ValueError, KeyError):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        write_atomic(path, json.dumps({"key": pem}).encode(), mode=0o600)
        return jose.JWKEC(key=key), ""


def _client(settings: AcmeSettings, state_dir: Path):
    """An ACME client with a registered account (registered on first use)."""
    import josepy as jose
    from acme import client, errors, messages

    key, uri = _account_key(state_dir)
    net = client.ClientNetwork(key, alg=jose.ES256, user_agent="mailhost", timeout=30)
    if settings.ca_bundle:
        net.verify_ssl = settings.ca_bundle  # requests takes a CA file path for `verify`
    directory = client.ClientV2.get_directory(settings.directory_url, net)
    acme = client.ClientV2(directory, net=net)
    if uri:
        net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        return acme
    registration = messages.NewRegistration.from_data(
        email=settings.email or None, terms_of_service_agreed=True
    )
    try:
        account = acme.new_account(registration)
    except errors.ConflictError as exc:  # the key is registered already (account.json lost)
        account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        net.account = account
    data = json.loads((state_dir / ACME_ACCOUNT).read_bytes())
    write_atomic(state_dir / ACME_ACCOUNT, json.dumps({**data, "uri": account.uri}).encode(),
                 mode=0o600)
    return acme


NONCE_ATTEMPTS = 3  # a CA may refuse a nonce at any time (RFC 8555 6.5): order again at once


def obtain(settings: AcmeSettings, state_dir: Path, spec: CertSpec,
           timeout: float = 90.0) -> CertInfo:
    """One order for all of `spec`'s names, validated over HTTP-01 at the edge; the new key and
    certificate chain are written in place (key first, both atomically). A refused nonce
    (`badNonce`, which every CA may answer and pebble does on purpose) is retried at once;
    anything else is the order's failure."""
    from acme import errors, messages

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    for attempt in range(1, NONCE_ATTEMPTS + 1):
        try:
            chain = _order(settings, state_dir, spec, key_pem, timeout)
            break
        except messages.Error as exc:
            if exc.code != "badNonce" or attempt == NONCE_ATTEMPTS:
                raise CertificateError(f"{', '.join(spec.names)}: {exc}") from exc
            logger.info("certificate for %s: the CA refused a nonce; ordering again", spec.name)
        except errors.Error as exc:
            raise CertificateError(f"{', '.join(spec.names)}: {exc}") from exc
    write_atomic(state_dir / spec.key, key_pem, mode=0o600)
    write_atomic(state_dir / spec.cert, chain, mode=0o644)
    info = read_cert(state_dir / spec.cert)
    assert info is not None
    logger.info("certificate for %s issued, valid until %s", ", ".join(spec.names),
                info.not_after.isoformat())
    return info


def _order(settings: AcmeSettings, state_dir: Path, spec: CertSpec, key_pem: bytes,
           timeout: float) -> bytes:
    """Place the order, answer its HTTP-01 challenges from the webroot, return the chain."""
    from acme import challenges, crypto_util

    tokens: list[Path] = []
    try:
        acme = _client(settings, state_dir)  # registration errors count as this order's
        order = acme.new_order(crypto_util.make_csr(key_pem, list(spec.names)))
        for authz in order.authorizations:
            if authz.body.status.name == "valid":
                continue
            chall = next((c for c in authz.body.challenges
                          if isinstance(c.chall, challenges.HTTP01)), None)
            if chall is None:
                raise CertificateError(f"{authz.body.identifier.value}: the CA offers no HTTP-01")
            response, validation = chall.response_and_validation(acme.net.key)
            token = chall.chall.encode("token")
            if not _TOKEN.match(token):
                raise CertificateError(f"the CA sent an unusable token {token!r}")
            path = state_dir / CHALLENGE_DIR / token
            write_atomic(path, validation.encode(), mode=0o644)
            tokens.append(path)
            acme.answer_challenge(chall, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)  # acme compares naive
        return acme.poll_and_finalize(order, deadline=deadline).fullchain_pem.encode()
    finally:
        for path in tokens:
            path.unlink(missing_ok=True)


def revoke(settings: AcmeSettings, state_dir: Path, spec: CertSpec, reason: int = 4) -> None:
    """Revoke the certificate in place (reason 4: superseded) with the account that ordered it."""
    from acme import errors, messages

    cert = x509.load_pem_x509_certificate((state_dir / spec.cert).read_bytes())
    for attempt in range(1, NONCE_ATTEMPTS + 1):
        try:
            _client(settings, state_dir).revoke(cert, reason)
            return
        except messages.Error as exc:
            if exc.code != "badNonce" or attempt == NONCE_ATTEMPTS:
                raise CertificateError(f"revoking {', '.join(spec.names)}: {exc}") from exc
        except errors.Error as exc:
            raise CertificateError(f"revoking {', '.join(spec.names)}: {exc}") from exc


# --- a renewal run -----------------------------------------------------------------------------


@dataclass
class RunResult:
    issued: list[str]
    failed: dict[str, str]
    deferred: list[str]  # due, but in back-off or over this run's order budget


def renew_due(settings: AcmeSettings, state_dir: Path, specs: list[CertSpec],
              now: dt.datetime | None = None) -> RunResult:
    """Obtain every due certificate of `specs`, most urgent first, within the order budget and
    the back-off of earlier failures. Records failures (and clears them on success)."""
    now = now or dt.datetime.now(dt.UTC)
    result = RunResult([], {}, [])
    if not settings.directory_url:
        return result
    state = state_load(state_dir)
    renew_before = dt.timedelta(days=settings.renew_before_days)
    candidates = []
    for spec in specs:
        info = read_cert(state_dir / spec.cert)
        if due(info, spec, now, renew_before):
            urgency = info.not_after if info and not info.self_signed else now
            candidates.append((urgency, spec))
    budget = settings.orders_per_run
    for _urgency, spec in sorted(candidates, key=lambda c: (c[0], c[1].name)):
        record = state.get(spec.name, {})
        retry_at = record.get("next_attempt")
        if budget <= 0 or (retry_at and dt.datetime.fromisoformat(retry_at) > now):
            result.deferred.append(spec.name)
            continue
        budget -= 1
        try:
            obtain(settings, state_dir, spec)
        except (CertificateError, OSError) as exc:
            failures = record.get("failures", 0) + 1
            wait = min(BACKOFF_FIRST * 2 ** (failures - 1), BACKOFF_MAX)
            state[spec.name] = {"failures": failures, "last_error": str(exc)[:500],
                                "next_attempt": (now + wait).isoformat()}
            result.failed[spec.name] = str(exc)
            logger.warning("certificate for %s: %s (next try in %s)", spec.name, exc, wait)
        else:
            state.pop(spec.name, None)
            result.issued.append(spec.name)
    for name in list(state):  # forget domains that left
        if name not in {spec.name for spec in specs}:
            del state[name]
    _state_save(state_dir, state)
    return result


def fingerprint(path: Path) -> str:
    info = x509.load_pem_x509_certificate(path.read_bytes())
    return info.fingerprint(hashes.SHA256()).hex()
