"""The sender-policy milter: holds the header From to the login, before OpenDKIM signs.

Run by the stack runner as `python -m mailhost.backend.milter --config <file>` with the
venv's interpreter; the config (rendered by mailhost.backend.config) names the socket, the
group that may connect to it, the lookup store and the pid file. Postfix asks it first on the
submission, submissions and internal listeners (never on the port-25 MX listener), then
OpenDKIM; a refusal here means the message never reaches the signer. The rule itself is
`mailhost.backend.sender_policy`.

It reads the node's lookup store read-only (the `sender_logins` relation Postfix uses for the
envelope, and `domains`) and nothing else: no central database, no Redis, no portal, so the
rule holds while the control plane is down. Built on pymilter (libmilter's own protocol
implementation, maintained, what spf-engine and dkimpy-milter use). Any failure inside the
policy answers 451 (tempfail), and Postfix's milter_default_action = tempfail covers a dead
milter: a broken policy never means unchecked mail.
"""

import argparse
import grp
import json
import logging
import os
import sqlite3
import sys
from pathlib import Path

import Milter
import milter as libmilter

from mailhost.backend.quotas import OverQuota, charge
from mailhost.backend.sender_policy import LISTENERS, SUBMISSION, Envelope, Refused, check
from mailhost.backend.senders import may_send_as as senders_may_send_as
from mailhost.backend.suppressions import refusal

logger = logging.getLogger("mailhost.sender_policy")


class LookupStore:
    """Answers the policy's two questions from the node's SQLite lookup store, read-only."""

    def __init__(self, path: Path, senders_db: Path | None = None):
        self.uri = f"file:{path}?mode=ro"
        self.senders_db = senders_db

    def __enter__(self) -> "LookupStore":
        self.conn = sqlite3.connect(self.uri, uri=True, timeout=5, check_same_thread=False)
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def may_send_as(self, login: str, address: str) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM sender_logins WHERE address = ? AND login = ?", (address, login)
        ).fetchone()
        if row is not None:
            return True
        # An application sender (mailhost/backend/senders.py), unless a mailbox owns the
        # address: Postfix's sender login maps answer from the first map that knows it.
        if self.senders_db is None or not self.senders_db.exists() or self.conn.execute(
            "SELECT 1 FROM sender_logins WHERE address = ?", (address,)
        ).fetchone():
            return False
        conn = sqlite3.connect(f"file:{self.senders_db}?mode=ro", uri=True, timeout=5)
        try:
            return senders_may_send_as(conn, login, address)
        finally:
            conn.close()

    def is_hosted(self, domain: str) -> bool:
        return self.conn.execute("SELECT 1 FROM domains WHERE name = ?", (domain,)).fetchone() \
            is not None


class SenderPolicyMilter(Milter.Base):
    lookup_db: Path  # set by main()
    suppressions_db: Path  # set by main()
    quotas_db: Path  # set by main()
    senders_db: Path  # set by main()

    def __init__(self):
        self.listener = ""
        self._reset()

    def _reset(self) -> None:
        self.login: str | None = None
        self.sender = ""
        self.headers: list[tuple[str, str]] = []
        self.recipients = 0

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
            with LookupStore(self.lookup_db, self.senders_db) as store:
                check(envelope, self.headers, store)
            if self.sender:  # a bounce (null sender) is never held to a sending quota
                charge(self.quotas_db, self.sender, self.recipients, login=self.login,
                       queue_id=self.getsymval("i") or None)
        except OverQuota as over:
            logger.info("over quota %s: %s (sender=<%s>)", self.getsymval("i") or "-", over.text,
                        self.sender)
            self.setreply(over.code, over.status, over.text.replace("%", "%%"))
            return Milter.REJECT if over.code.startswith("5") else Milter.TEMPFAIL
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

    def envrcpt(self, to, *params):
        """On the submission listeners, a recipient the sending organisation suppressed is
        refused here, before any data (the API drops them before it sends)."""
        self.recipients += 1
        if self.listener != SUBMISSION or not self.suppressions_db.exists():
            return Milter.CONTINUE
        try:
            conn = sqlite3.connect(f"file:{self.suppressions_db}?mode=ro", uri=True, timeout=5)
            try:
                reason = refusal(conn, self.sender, to)
            finally:
                conn.close()
        except sqlite3.Error:
            logger.exception("suppression list unreadable; answering tempfail")
            self.setreply("451", "4.3.0", "suppression list temporarily unavailable")
            return Milter.TEMPFAIL
        if reason is None:
            return Milter.CONTINUE
        text = f"<{to.strip('<>')}> is on the sender's suppression list ({reason})"
        logger.info("refused rcpt: %s (sender=<%s>)", text, self.sender)
        self.setreply("550", "5.1.1", text.replace("%", "%%"))
        return Milter.REJECT

    def abort(self):
        self._reset()
        return Milter.CONTINUE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    socket_path, pid_file = Path(config["socket"]), Path(config["pid_file"])
    SenderPolicyMilter.lookup_db = Path(config["lookup_db"])
    SenderPolicyMilter.suppressions_db = Path(config["suppressions_db"])
    SenderPolicyMilter.quotas_db = Path(config["quotas_db"])
    SenderPolicyMilter.senders_db = Path(config["senders_db"])
    Milter.factory = SenderPolicyMilter
    # The socket is created here, before the milter runs, so that only its group (Postfix's)
    # may connect: mode 0660, group from the config; no one else reaches the policy.
    os.umask(0o077)
    libmilter.setconn(f"unix:{socket_path}")
    libmilter.settimeout(60)
    _register()
    libmilter.opensocket(True)  # True: remove a stale socket left by a killed predecessor
    os.chown(socket_path, -1, grp.getgrnam(config["socket_group"]).gr_gid)
    os.chmod(socket_path, 0o660)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    logger.info("listening on %s, lookup store %s", socket_path, SenderPolicyMilter.lookup_db)
    try:
        libmilter.main()  # libmilter's own SIGTERM handling returns from here
    finally:
        pid_file.unlink(missing_ok=True)
    return 0


def _register() -> None:
    """pymilter's runmilter() up to the socket: every callback, then the registration."""
    libmilter.set_connect_callback(Milter.connect_callback)
    libmilter.set_helo_callback(lambda ctx, host: ctx.getpriv().hello(host))
    libmilter.set_envfrom_callback(lambda ctx, *b: ctx.getpriv().envfrom_bytes(*b))
    libmilter.set_envrcpt_callback(lambda ctx, *b: ctx.getpriv().envrcpt_bytes(*b))
    libmilter.set_header_callback(lambda ctx, f, v: ctx.getpriv().header_bytes(f, v))
    libmilter.set_eoh_callback(lambda ctx: ctx.getpriv().eoh())
    libmilter.set_body_callback(lambda ctx, chunk: ctx.getpriv().body(chunk))
    libmilter.set_eom_callback(lambda ctx: ctx.getpriv().eom())
    libmilter.set_abort_callback(lambda ctx: ctx.getpriv().abort())
    libmilter.set_close_callback(Milter.close_callback)
    libmilter.register(
        "mailhost-sender-policy",
        data=lambda ctx: ctx.getpriv().data(),
        unknown=lambda ctx, cmd: ctx.getpriv().unknown(cmd),
        negotiate=Milter.negotiate_callback,
    )


if __name__ == "__main__":
    sys.exit(main())
