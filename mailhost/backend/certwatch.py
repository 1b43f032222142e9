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

import argparse
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s cert-watch: %(message)s")
    config = json.loads(args.config.read_text())
    watcher = Watcher(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pid_file = Path(config["pid_file"])
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        while not stop.is_set():
            try:
                watcher.step()
            except Exception:  # one bad round must not end the watching
                logger.exception("certificate watch round failed")
            stop.wait(config["interval_seconds"])
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
