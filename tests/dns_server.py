"""A real authoritative DNS server (Debian's Knot) on loopback, and one that never answers.

Fixtures:
- `knot`: a factory; `knot(zones={"example.test": "<records>"}, broken=["x.test"])` starts a
  knotd on a free port serving those zones (each gets an SOA and NS added), with a TSIG key
  allowed to update every zone (RFC 2136) in memory only; `broken` zones fail to load, so
  queries for them get SERVFAIL. Stopped at the end of the test.
- `silent_dns`: `127.0.0.1@PORT` of a UDP and a TCP socket that never answer (timeouts).

The facts this relies on are in the shared notes on DNS (dns.md).
"""

import base64
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.stack import free_ports

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"
TSIG_KEY_NAME = "mailhost-test"


def zone_text(zone: str, records: str, serial: int) -> str:
    """A complete zone file: SOA, NS (with glue), then `records` (absolute or relative names)."""
    return (
        f"$ORIGIN {zone}.\n$TTL 300\n"
        f"@ IN SOA ns.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 300\n"
        f"@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n{records}\n"
    )


@dataclass
class KnotServer:
    directory: Path
    port: int
    zones: dict[str, str]
    broken: list[str]
    key_secret: str
    process: subprocess.Popen | None = None
    serial: int = 1
    stderr: list[str] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.directory / "knot.conf"

    @property
    def address(self) -> str:
        """The resolver spec the settings take: `127.0.0.1@PORT`."""
        return f"127.0.0.1@{self.port}"

    def write_config(self) -> None:
        for sub in ("run", "db", "zones"):
            (self.directory / sub).mkdir(exist_ok=True)
        zone_entries = "".join(
            f"  - domain: {zone}\n    file: {zone}.zone\n    acl: update\n"
            for zone in [*self.zones, *self.broken]
        )
        self.conf.write_text(
            f"server:\n  rundir: {self.directory / 'run'}\n  listen: 127.0.0.1@{self.port}\n"
            "log:\n  - target: stderr\n    any: warning\n"
            f"database:\n  storage: {self.directory / 'db'}\n"
            f"key:\n  - id: {TSIG_KEY_NAME}\n    algorithm: hmac-sha256\n"
            f"    secret: {self.key_secret}\n"
            f"acl:\n  - id: update\n    key: {TSIG_KEY_NAME}\n    action: update\n"
            f"template:\n  - id: default\n    storage: {self.directory / 'zones'}\n"
            "    zonefile-sync: -1\n    journal-content: none\n"
            f"zone:\n{zone_entries}"
        )
        for zone, records in self.zones.items():
            self._write_zone(zone, records)
        for zone in self.broken:
            (self.directory / "zones" / f"{zone}.zone").write_text("this is { not a zone\n")

    def _write_zone(self, zone: str, records: str) -> None:
        path = self.directory / "zones" / f"{zone}.zone"
        path.write_text(zone_text(zone, records, self.serial))

    def start(self) -> None:
        self.write_config()
        self.process = subprocess.Popen(
            [KNOTD, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        first = next(iter(self.zones), None)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"knotd exited: {self.process.stderr.read().decode()[-2000:]}")
            if first is None or self.soa_serial(first) is not None:
                return
            time.sleep(0.02)
        raise RuntimeError("knotd did not answer within 10 s")

    def soa_serial(self, zone: str) -> int | None:
        query = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return None
        for rrset in response.answer:
            return rrset[0].serial
        return None

    def set_zone(self, zone: str, records: str) -> None:
        """Replace a zone's content (dropping dynamic updates to it) and wait until served."""
        self.serial += 1
        self.zones[zone] = records
        self._write_zone(zone, records)
        subprocess.run(
            [KNOTC, "-c", str(self.conf), "zone-reload", zone], check=True, capture_output=True
        )
        deadline = time.monotonic() + 10
        while self.soa_serial(zone) != self.serial:
            if time.monotonic() > deadline:
                raise RuntimeError(f"knotd did not load the new {zone}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def knot():
    servers: list[KnotServer] = []
    directories: list[str] = []

    def start(zones: dict[str, str], broken: list[str] = ()) -> KnotServer:
        directory = tempfile.mkdtemp(prefix="mh-knot-", dir="/tmp")
        directories.append(directory)
        server = KnotServer(
            directory=Path(directory),
            port=free_ports(1)[0],
            zones=dict(zones),
            broken=list(broken),
            key_secret=base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def silent_dns():
    """A DNS "server" that receives and never answers, over UDP and TCP."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    port = udp.getsockname()[1]
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.bind(("127.0.0.1", port))
    except OSError:
        tcp.bind(("127.0.0.1", 0))  # the UDP port is what a resolver asks first
    tcp.listen(16)
    try:
        yield f"127.0.0.1@{port}"
    finally:
        udp.close()
        tcp.close()
