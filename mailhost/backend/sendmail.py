"""`sendmail -t -i` for services on the mail host, through SMTP submission.

Postfix's own sendmail (its pickup path) has no login, so nothing could hold it to a sender
binding, and its mail never reaches the signer; it is not offered. This command takes the
same arguments a service gives sendmail and submits the message on 127.0.0.1:587 with an
application sender's login (POST /api/v1/app-senders), so it meets every rule SMTP
submission does: From binding to the login's addresses, the suppression list, sending quotas,
DKIM, and a record of the message in the portal's Sent mail.

    python -m mailhost.backend.sendmail -t -i [-f sender] [-F name] [--config FILE] [rcpt...]

The configuration file (`--config`, else MAILHOST_SENDMAIL_CONFIG, else
/etc/mailhost/sendmail.conf; readable by the service only) holds `key = value` lines:
`login`, `password`, and optionally `host` (127.0.0.1), `port` (587) and `cafile` (a PEM the
server's certificate must match; without one, a loopback host is not verified: the
connection does not leave the machine). Exit codes are sendmail's (sysexits): 0 sent, 64 bad
usage, 65 bad message, 67 a recipient refused, 69 refused for good, 75 try again later,
77 login refused, 78 configuration error.
"""

import argparse
import email.policy
import email.utils
import ipaddress
import os
import smtplib
import socket
import ssl
import sys
from email.parser import BytesParser
from pathlib import Path

DEFAULT_CONFIG = "/etc/mailhost/sendmail.conf"
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_UNAVAILABLE = 0, 64, 65, 67, 69
EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 75, 77, 78


class Failed(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code


def read_config(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise Failed(EX_CONFIG, f"cannot read {path}: {exc.strerror}") from None
    config = {"host": "127.0.0.1", "port": "587", "cafile": ""}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise Failed(EX_CONFIG, f"{path}:{number}: expected key = value")
        config[key.strip()] = value.strip()
    if not config.get("login") or not config.get("password"):
        raise Failed(EX_CONFIG, f"{path}: login and password are required")
    return config


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def tls_context(config: dict[str, str]) -> ssl.SSLContext:
    if config["cafile"]:
        context = ssl.create_default_context(cafile=config["cafile"])
        context.check_hostname = False  # the certificate itself is pinned
        return context
    context = ssl.create_default_context()
    if _loopback(config["host"]):
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


def envelope(raw: bytes, args) -> tuple[str, list[str], bytes]:
    """(sender, recipients, message as sent): -t takes To/Cc/Bcc and drops Bcc."""
    message = BytesParser(policy=email.policy.SMTP).parsebytes(raw)
    if message.defects and not message.keys():
        raise Failed(EX_DATAERR, "the message has no header")
    recipients = list(args.recipients)
    if args.t:
        for field in ("To", "Cc", "Bcc"):
            recipients += [a for _, a in email.utils.getaddresses(message.get_all(field, []))
                           if a]
        del message["Bcc"]
    if not recipients:
        raise Failed(EX_USAGE, "no recipients (give them, or -t to read To, Cc and Bcc)")
    if "Date" not in message:
        message["Date"] = email.utils.formatdate(localtime=True)
    froms = email.utils.getaddresses(message.get_all("From", []))
    sender = args.f or (froms[0][1] if froms else "")
    if "From" not in message and sender:
        message["From"] = email.utils.formataddr((args.F or "", sender))
    if "Message-ID" not in message and sender:
        message["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2])
    return sender, list(dict.fromkeys(recipients)), message.as_bytes()


def submit(config: dict[str, str], sender: str, recipients: list[str], data: bytes) -> None:
    try:
        with smtplib.SMTP(config["host"], int(config["port"]), timeout=60,
                          local_hostname=socket.getfqdn()) as client:
            client.starttls(context=tls_context(config))
            client.login(config["login"], config["password"])
            refused = client.sendmail(sender, recipients, data)
    except smtplib.SMTPAuthenticationError as exc:
        raise Failed(EX_NOPERM, f"login refused: {exc.smtp_code} {_text(exc.smtp_error)}") \
            from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise Failed(_code(exc.recipients.values()), "; ".join(
            f"<{r}>: {c} {_text(t)}" for r, (c, t) in exc.recipients.items())) from None
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        raise Failed(EX_TEMPFAIL if 400 <= exc.smtp_code < 500 else EX_UNAVAILABLE,
                     f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise Failed(EX_TEMPFAIL, f"submission server: {exc}") from None
    if refused:  # some recipients taken, some not: say which were not
        raise Failed(_code(refused.values()), "; ".join(
            f"<{r}>: {c} {_text(t)}" for r, (c, t) in refused.items()))


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _code(answers) -> int:
    """All temporary: try again later; a bad address (5.1.x): no such user; else (a policy
    refusal, such as a sender the login may not use) refused for good."""
    answers = list(answers)
    if all(400 <= code < 500 for code, _ in answers):
        return EX_TEMPFAIL
    if all(_text(text).startswith("5.1.") for code, text in answers if code >= 500):
        return EX_NOUSER
    return EX_UNAVAILABLE


def main(argv: list[str] | None = None, stdin=None) -> int:
    parser = argparse.ArgumentParser(prog="sendmail", description=__doc__.split("\n\n")[0])
    parser.add_argument("-t", action="store_true", help="recipients from To, Cc and Bcc")
    parser.add_argument("-i", "-oi", dest="i", action="store_true",
                        help="a line with one dot does not end the message (always so here)")
    parser.add_argument("-f", "-r", dest="f", default="", help="the envelope sender")
    parser.add_argument("-F", dest="F", default="", help="the sender's full name")
    parser.add_argument("--config", default=os.environ.get("MAILHOST_SENDMAIL_CONFIG",
                                                           DEFAULT_CONFIG))
    parser.add_argument("recipients", nargs="*")
    args = parser.parse_args(argv)
    try:
        config = read_config(Path(args.config))
        sender, recipients, data = envelope((stdin or sys.stdin.buffer).read(), args)
        submit(config, sender, recipients, data)
    except Failed as exc:
        print(f"sendmail: {exc}", file=sys.stderr)
        return exc.code
    return EX_OK


if __name__ == "__main__":
    sys.exit(main())
