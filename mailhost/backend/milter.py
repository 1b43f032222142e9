"""The sender-policy milter: holds the header From to the login, before OpenDKIM signs.

Run by the stack runner as `python -m mailhost.backend.milter --socket … --lookup-db …` with
the venv's interpreter. Postfix asks it first on the submission, submissions and internal
listeners (never on the port-25 MX listener), then OpenDKIM; a refusal here means the message
never reaches the signer. The rule itself is `mailhost.backend.sender_policy`.

It reads the node's lookup store read-only (the `sender_logins` relation Postfix uses for the
envelope, and `domains`) and nothing else: no central database, no Redis, no portal, so the
rule holds while the control plane is down. Built on pymilter (libmilter's own protocol
implementation, maintained, what spf-engine and dkimpy-milter use). Any failure inside the
policy answers 451 (tempfail), and Postfix's milter_default_action = tempfail covers a dead
milter: a broken policy never means unchecked mail.
"""

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path

import Milter

from mailhost.backend.sender_policy import LISTENERS, Envelope, Refused, check

logger = logging.getLogger("mailhost.sender_policy")


class LookupStore:
    """Answers the policy's two questions from the node's SQLite lookup store, read-only."""

    def __init__(self, path: Path):
        self.uri = f"file:{path}?mode=ro"

    def __enter__(self) -> "LookupStore":
        self.conn = sqlite3.connect(self.uri, uri=True, timeout=5, check_same_thread=False)
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def may_send_as(self, login: str, address: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sender_logins WHERE address = ? AND login = ?", (address, login)
        ).fetchone()
        return row is not None

    def is_hosted(self, domain: str) -> bool:
        return self.conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() \
            is not None


class SenderPolicyMilter(Milter.Base):
    lookup_db: Path  # set by main()

    def __init__(self):
        self.listener = ""
        self._reset()

    def _reset(self) -> None:
        self.login: str | None = None
        self.sender = ""
        self.headers: list[tuple[str, str]] = []

    @Milter.noreply
    def connect(self, hostname, family, hostaddr):
        daemon = self.getsymval("{daemon_name}") or ""
        self.listener = LISTENERS.get(daemon, f"unknown:{daemon}")
        return Milter.CONTINUE

    def envfrom(self, mailfrom, *params):
        self._reset()
        self.sender = mailfrom.strip().removeprefix("<").removesuffix(">")
        login = self.getsymval("{auth_authen}")
        self.login = login.lower() if login else None
        return Milter.CONTINUE

    @Milter.noreply
    def header(self, field, value):
        self.headers.append((field, value))
        return Milter.CONTINUE

    def eoh(self):
        envelope = Envelope(listener=self.listener, login=self.login, sender=self.sender)
        try:
            with LookupStore(self.lookup_db) as store:
                check(envelope, self.headers, store)
        except Refused as refusal:
            logger.info("refused %s: %s (listener=%s login=%s sender=<%s>)",
                        self.getsymval("i") or "-", refusal.text, self.listener, self.login,
                        self.sender)
            self.setreply(refusal.code, refusal.status, refusal.text.replace("%", "%%"))
            return Milter.REJECT if refusal.code.startswith("5") else Milter.TEMPFAIL
        except Exception:  # any failure here must hold the mail back, never let it through
            logger.exception("sender policy failed; answering tempfail")
            self.setreply("451", "4.3.0", "sender policy temporarily unavailable")
            return Milter.TEMPFAIL
        return Milter.ACCEPT  # nothing more to see; OpenDKIM still gets the message

    def abort(self):
        self._reset()
        return Milter.CONTINUE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, type=Path, help="unix socket to listen on")
    parser.add_argument("--lookup-db", required=True, type=Path, help="the node's lookup store")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    SenderPolicyMilter.lookup_db = args.lookup_db
    Milter.factory = SenderPolicyMilter
    # The socket's directory is root:postfix 2750; 007 leaves the socket itself connectable by
    # the postfix group and by no one else.
    os.umask(0o007)
    logger.info("listening on %s, lookup store %s", args.socket, args.lookup_db)
    Milter.runmilter("mailhost-sender-policy", f"unix:{args.socket}", timeout=60)


if __name__ == "__main__":
    main()
