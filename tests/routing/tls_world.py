"""A small TLS "internet" for the outbound TLS tests, in a network namespace of its own.

Inside the namespace: the node's whole stack (started from its state dir, as `manage.py stack
start` would), its unbound on port 53 as the namespace's resolver (/etc/netns/<ns>/
resolv.conf) serving a DNSSEC-signed fixture zone (ldns-signzone) with a trust anchor, and the
peers (tests/routing/tls_peers.py): STARTTLS MX hosts on 127.0.0.x:25 and an HTTPS server for
MTA-STS policies on 127.0.0.9:443. Nothing of it is reachable from outside the namespace; the
test hands mail to Postfix with its sendmail (the maildrop is a directory, not a socket) and
reads what the peers received from files.
"""

import dataclasses
import datetime as dt
import hashlib
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailhost.backend.inbound import FIXTURE_ZONES_DIR
from mailhost.backend.stack import Stack
from mailhost.backend.tls_policy import OutboundTls
from tests.stack import make_state_dir, stack_config, wait_for

ZONE = "tlstest.example"
HTTPS_IP = "127.0.0.9"
PROJECT = Path(__file__).resolve().parents[2]


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mailhost TLS test CA")])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(self, subject, public_key) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self.name)
                .public_key(public_key).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=2)))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, names: list[str], directory: Path, stem: str) -> tuple[Path, Path, bytes]:
        """A server certificate for `names`: (cert file, key file, DER of its public key)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._builder(subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        key_file.write_bytes(_pem_key(key))
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return cert_file, key_file, spki


@dataclass
class Peer:
    label: str  # the recipient domain is <label>.tlstest.example, its MX mx-<label>.…
    ip: str
    cert_names: list[str]  # what its certificate says
    tlsa: str = ""  # "match", "wrong" or "" (none)
    sts: bool = False  # an enforce-mode MTA-STS policy naming its MX

    @property
    def domain(self) -> str:
        return f"{self.label}.{ZONE}"

    @property
    def mx(self) -> str:
        return f"mx-{self.label}.{ZONE}"


PEERS = [
    Peer("sts-ok", "127.0.0.2", [f"mx-sts-ok.{ZONE}"], sts=True),
    # A certificate from a trusted CA, for another name: the policy's MX does not verify.
    Peer("sts-bad", "127.0.0.3", [f"elsewhere.{ZONE}"], sts=True),
    # A good one, for the test that stops the MTA-STS resolver.
    Peer("sts-down", "127.0.0.7", [f"mx-sts-down.{ZONE}"], sts=True),
    Peer("dane-ok", "127.0.0.4", ["not-checked.invalid"], tlsa="match"),
    Peer("dane-bad", "127.0.0.5", ["not-checked.invalid"], tlsa="wrong"),
    # No policy anywhere but the portal's override ("secure"): a certificate for another name.
    Peer("partner", "127.0.0.6", [f"elsewhere.{ZONE}"]),
]


def _zone(peers: list[Peer], spkis: dict[str, bytes]) -> str:
    lines = [f"$ORIGIN {ZONE}.", "$TTL 300",
             f"@ IN SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 300",
             "@ IN NS ns", "ns IN A 127.0.0.1"]
    for peer in peers:
        lines += [f"{peer.label} IN MX 10 mx-{peer.label}", f"mx-{peer.label} IN A {peer.ip}"]
        if peer.tlsa:
            digest = hashlib.sha256(spkis[peer.label]).hexdigest()
            if peer.tlsa == "wrong":
                digest = hashlib.sha256(b"not the key").hexdigest()
            lines.append(f"_25._tcp.mx-{peer.label} IN TLSA 3 1 1 {digest}")
        if peer.sts:
            lines += [f'_mta-sts.{peer.label} IN TXT "v=STSv1; id=1"',
                      f"mta-sts.{peer.label} IN A {HTTPS_IP}"]
    return "\n".join(lines) + "\n"


def _signed_zone(directory: Path, text: str) -> tuple[Path, str]:
    """The zone signed with a fresh key (ldns-signzone), and its DS as unbound's trust anchor."""
    unsigned = directory / f"{ZONE}.zone"
    unsigned.write_text(text)
    key = subprocess.run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", ZONE], cwd=directory,
                         check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run(["ldns-signzone", "-n", str(unsigned), key], cwd=directory, check=True,
                   capture_output=True)
    ds = subprocess.run(["ldns-key2ds", "-n", "-2", f"{key}.key"], cwd=directory, check=True,
                        capture_output=True, text=True).stdout.strip()
    return directory / f"{ZONE}.zone.signed", " ".join(ds.split())


def _unbound_fixture(signed: Path, ds: str) -> str:
    """Included in the node's unbound (local mode): the zone answers, validated."""
    return "\n".join([
        f'  local-zone: "{ZONE}." transparent',
        f'  trust-anchor: "{ds}"',
        "auth-zone:",
        f'  name: "{ZONE}."',
        f'  zonefile: "{signed}"',
        "  for-downstream: no",
        "  for-upstream: yes",
        "  fallback-enabled: no",
        "server:",  # whatever is included after this file is server options again
    ]) + "\n"


def _netns(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], check=True, capture_output=True, text=True, **kwargs)


@dataclass
class TlsWorld:
    ns: str
    stack: Stack
    outdir: Path
    work: Path
    peers: list[Peer] = field(default_factory=lambda: list(PEERS))
    _peers_proc: subprocess.Popen | None = None

    def peer(self, label: str) -> Peer:
        return next(p for p in self.peers if p.label == label)

    def in_ns(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], check=True,
                              capture_output=True, text=True, timeout=120, **kwargs)

    def send(self, recipient: str, subject: str) -> None:
        """Hand a message to the node's Postfix with its own sendmail (maildrop)."""
        message = (f"From: tester@{self.stack.cfg.hostname}\nTo: {recipient}\n"
                   f"Subject: {subject}\nMessage-ID: <{secrets.token_hex(8)}@tls.test>\n\n"
                   "TLS posture test.\n")
        subprocess.run(["/usr/sbin/sendmail", "-C", str(self.stack.postfix_dir), "-i",
                        "-f", f"tester@{self.stack.cfg.hostname}", recipient],
                       input=message, text=True, check=True, timeout=30)

    def received(self, peer: Peer, subject: str) -> list[bytes]:
        found = []
        for path in sorted(self.outdir.glob(f"{peer.ip}-*.eml")):
            data = path.read_bytes()
            if f"Subject: {subject}".encode() in data:
                found.append(data)
        return found

    def log(self) -> str:
        return self.stack.log_file("postfix").read_text(errors="replace")

    def failures(self, domain: str) -> list[dict]:
        import sqlite3

        from mailhost.backend.config import EVENTS_DB
        conn = sqlite3.connect(self.stack.cfg.path(EVENTS_DB))
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(
                "SELECT * FROM tls_failures WHERE domain = ? ORDER BY id", (domain,))]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()


def start_world() -> TlsWorld:
    ns = f"mhtls{secrets.token_hex(3)}"
    work = make_state_dir()  # a short path: the node's state dir lives below it
    state, outdir, certs = work / "n", work / "peers", work / "certs"
    for directory in (outdir, certs):
        directory.mkdir(parents=True)
    os.chmod(work, 0o755)  # noqa: S103 (unbound reads the zone below it)
    ca = TestCA()
    (certs / "ca.pem").write_bytes(ca.pem())
    os.chmod(certs, 0o755)  # noqa: S103
    cfg = stack_config(state, internet_mx="",
                       outbound_tls=OutboundTls(ca_file=str(certs / "ca.pem")))
    cfg = dataclasses.replace(cfg, ports={**cfg.ports, "resolver": 53})
    stack = Stack(cfg)
    world = TlsWorld(ns=ns, stack=stack, outdir=outdir, work=work)
    _netns("netns", "add", ns)
    try:
        _netns("-n", ns, "link", "set", "lo", "up")
        Path(f"/etc/netns/{ns}").mkdir(parents=True, exist_ok=True)
        Path(f"/etc/netns/{ns}/resolv.conf").write_text("nameserver 127.0.0.1\n"
                                                        "options trust-ad\n")
        _prepare(world, ca, certs)
        start_stack_in_ns(world)
        world._peers_proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(PROJECT / "tests/routing/tls_peers.py"),
             str(work / "peers.json")], cwd=PROJECT, env=_env(),
            stdout=(work / "peers.log").open("ab"), stderr=subprocess.STDOUT)
        wait_for(lambda: (outdir / "ready").exists() or world._peers_proc.poll() is not None,
                 timeout=30)
        if not (outdir / "ready").exists():
            raise RuntimeError((work / "peers.log").read_text())
    except BaseException:
        stop_world(world)
        raise
    return world


def start_stack_in_ns(world: TlsWorld) -> None:
    """`Stack.start()` run inside the namespace: every daemon starts there (and lives there)."""
    pickled = world.work / "cfg.pickle"
    pickled.write_bytes(pickle.dumps(world.stack.cfg))
    world.in_ns([sys.executable, "-c", "import pickle, sys; "
                 "from mailhost.backend.stack import Stack; "
                 "Stack(pickle.loads(open(sys.argv[1], 'rb').read())).start()",
                 str(pickled)], cwd=PROJECT, env=_env())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT)}


def _prepare(world: TlsWorld, ca: TestCA, certs: Path) -> None:
    world.stack.prepare()
    spkis, mx = {}, []
    for peer in world.peers:
        cert, key, spki = ca.issue(peer.cert_names, certs, peer.label)
        spkis[peer.label] = spki
        mx.append({"ip": peer.ip, "name": peer.mx, "cert": str(cert), "key": str(key)})
    sts_peers = [p for p in world.peers if p.sts]
    https_cert, https_key, _ = ca.issue([f"mta-sts.{p.domain}" for p in sts_peers], certs,
                                        "mta-sts")
    policies = {f"mta-sts.{p.domain}": f"version: STSv1\r\nmode: enforce\r\nmx: {p.mx}\r\n"
                "max_age: 86400\r\n" for p in sts_peers}
    (world.work / "peers.json").write_text(json.dumps({
        "outdir": str(world.outdir), "mx": mx, "https_ip": HTTPS_IP,
        "https_cert": str(https_cert), "https_key": str(https_key), "policies": policies,
    }))
    zones = world.work / "zone"
    zones.mkdir()
    os.chmod(zones, 0o755)  # noqa: S103
    signed, ds = _signed_zone(zones, _zone(world.peers, spkis))
    os.chmod(signed, 0o644)
    world.stack.cfg.path(f"{FIXTURE_ZONES_DIR}/{ZONE}.conf").write_text(
        _unbound_fixture(signed, ds))


def stop_world(world: TlsWorld) -> None:
    if world._peers_proc is not None and world._peers_proc.poll() is None:
        world._peers_proc.terminate()
        try:
            world._peers_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            world._peers_proc.kill()
    try:
        world.stack.stop()
    finally:
        subprocess.run(["ip", "netns", "del", world.ns], check=False, capture_output=True)
        shutil.rmtree(f"/etc/netns/{world.ns}", ignore_errors=True)
        shutil.rmtree(world.work, ignore_errors=True)
