"""The certificate watcher: reloads exactly the daemons that use a certificate when it changes.

Run by the stack runner as `python -m mailhost.backend.certwatch --config <state>/certwatch/
certwatch.json` (rendered by mailhost/backend/config.py). Every `interval_seconds` it hashes the
watched certificate files (globs relative to the state dir); when one changed and its key
matches it (a renewal writes the key first, then the certificate: a half-written pair waits for
the next round), it runs the reload command of each daemon that reads it, once per round:
Postfix (`postfix reload`), Dovecot (`doveadm reload`), the edge (`nginx -s reload`). New TLS
clients then get the new certificate; no one restarts anything by hand. It works the same for
ACME renewals and for certificates an operator copies in, and needs nothing but the node.
"""

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mailhost.backend import periodic

logger = logging.getLogger("mailhost.certwatch")


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def pair_matches(cert_path: Path, key_path: Path) -> bool:
    """Whether the key file holds the private key of the certificate file's first certificate."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


class Watcher:
    def __init__(self, config: dict):
        self.state_dir = Path(config["state_dir"])
        self.watch = config["watch"]  # [{"cert": glob, "key": name beside it, "daemons": [...]}]
        self.commands = config["commands"]  # daemon -> argv
        self.seen: dict[Path, str | None] = self._scan()

    def _pairs(self):
        for entry in self.watch:
            for cert in sorted(self.state_dir.glob(entry["cert"])):
                yield cert, cert.with_name(entry["key"]), entry["daemons"]

    def _scan(self) -> dict[Path, str | None]:
        return {cert: _digest(cert) for cert, _key, _daemons in self._pairs()}

    def step(self) -> list[str]:
        """One round: reload the daemons of changed, complete pairs; return them."""
        daemons: set[str] = set()
        for cert, key, users in self._pairs():
            digest = _digest(cert)
            if digest is None or digest == self.seen.get(cert) or not pair_matches(cert, key):
                continue
            self.seen[cert] = digest
            logger.info("%s changed: reloading %s", cert, ", ".join(users))
            daemons |= set(users)
        reloaded = []
        for daemon in sorted(daemons):
            argv = self.commands.get(daemon)
            if not argv:
                continue
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=60, check=False)
            if done.returncode != 0:  # not running, say: it reads the new pair when it starts
                logger.warning("reloading %s failed (exit %s): %s", daemon, done.returncode,
                               (done.stdout + done.stderr).strip()[:500])
                continue
            reloaded.append(daemon)
        return reloaded


def main(argv: list[str] | None = None) -> int:
    return periodic.run(argv, description=__doc__.splitlines()[0], log_name="cert-watch",
                        make_step=lambda config: Watcher(config).step)


if __name__ == "__main__":
    sys.exit(main())
