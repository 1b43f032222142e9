"""What a client sees of a docker/compose.yml deployment (called by docker/test.sh).

With an organisation's API token: host a domain and two mailboxes through the API over the
edge's HTTPS; mail from the internet on SMTP reaches one (read back over IMAPS); the other
sends through submission (587, STARTTLS, its login) and the delivered copy carries a DKIM
signature by the domain that dkimpy verifies against the key the API says to publish.

Settings from the environment (docker/test.sh): MAILHOST_HOSTNAME, MAILHOST_HTTPS_PORT,
MAILHOST_SMTP_PORT, MAILHOST_SUBMISSION_PORT, MAILHOST_SUBMISSIONS_PORT, MAILHOST_IMAPS_PORT,
E2E_TOKEN.
Exit status 0 when every step held; otherwise the step that failed, on stderr.

    e2e.py certificates --ca ROOTS [--not-serials FILE] [--write-serials FILE]

instead waits until a new TLS client on 443, 25 and 587 (STARTTLS), 465 and 993 is given a
certificate for the mail host name that verifies against ROOTS alone (the ACME CA's roots),
and, with --not-serials, none of the serials in FILE (a renewal); it prints the serials.
"""

import http.client
import imaplib
import json
import os
import secrets
import smtplib
import socket
import ssl
import sys
import time
from email.message import EmailMessage

import dkim
from cryptography import x509

HOST = os.environ["MAILHOST_HOSTNAME"]
PORT = {name: int(os.environ[f"MAILHOST_{name}_PORT"])
        for name in ("HTTPS", "SMTP", "SUBMISSION", "SUBMISSIONS", "IMAPS")}
DOMAIN = f"e2e-{secrets.token_hex(3)}.example"  # special-use: verified without DNS
PASSWORD = "Docker-e2e-" + secrets.token_hex(8)

# The mail path connects to 127.0.0.1 (no name to check); `certificates` checks the certificates.
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE


class StepFailed(Exception):
    pass


TOKEN = ""


def api(method: str, path: str, body: dict | None = None) -> dict:
    conn = http.client.HTTPSConnection("127.0.0.1", PORT["HTTPS"], context=TLS, timeout=30)
    conn.request(method, f"/api/v1{path}", body=json.dumps(body) if body else None, headers={
        "Host": f"{HOST}:{PORT['HTTPS']}", "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise StepFailed(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data)


def wait_for(what: str, probe, timeout: float = 90.0):
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            if result := probe():
                return result
        except (OSError, imaplib.IMAP4.error, smtplib.SMTPException) as exc:
            last = exc
        time.sleep(0.5)
    raise StepFailed(f"{what}: not within {timeout:.0f} s (last error: {last})")


def inbox(user: str) -> list[bytes]:
    with imaplib.IMAP4_SSL("127.0.0.1", PORT["IMAPS"], ssl_context=TLS) as imap:
        imap.login(user, PASSWORD)
        imap.select("INBOX", readonly=True)
        _, ids = imap.search(None, "ALL")
        return [imap.fetch(i, "(RFC822)")[1][0][1] for i in ids[0].split()]


def message(sender: str, to: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = f"<{secrets.token_hex(8)}@{DOMAIN}>"
    msg.set_content("Sent through the docker deployment.\n")
    return msg


def from_the_internet(to: str, subject: str) -> bool:
    """One SMTP attempt on port 25 (greylisting defers the first: the caller retries)."""
    with smtplib.SMTP("127.0.0.1", PORT["SMTP"], timeout=30) as smtp:
        smtp.ehlo("mx.sender.example")
        smtp.send_message(message("postmaster@sender.example", to, subject),
                          from_addr="", to_addrs=[to])
    return True


def received(user: str, subject: str) -> bytes | None:
    return next((raw for raw in inbox(user) if f"Subject: {subject}".encode() in raw), None)


def submitted(sender: str, to: str) -> bytes | None:
    """Send through submission with the sender's login; the delivered copy once it is signed.
    OpenDKIM loads a new domain's key on a reload it does asynchronously, so the first message
    after a domain is created may leave unsigned: the caller resends until one is signed."""
    subject = f"signed {secrets.token_hex(4)}"
    with smtplib.SMTP("127.0.0.1", PORT["SUBMISSION"], timeout=30) as smtp:
        smtp.starttls(context=TLS)
        smtp.login(sender, PASSWORD)
        smtp.send_message(message(sender, to, subject))
    raw = wait_for("the submitted message in INBOX", lambda: received(to, subject), timeout=30)
    return raw if b"\r\nDKIM-Signature:" in raw else None


def dkim_txt(name: bytes, timeout: int = 5) -> bytes | None:
    """dkimpy's DNS lookup, answered from the records the API tells the operator to publish."""
    wanted = name.decode().rstrip(".")
    records = api("GET", f"/domains/{DOMAIN}/dns")["records"]
    return next((r["value"].encode() for r in records
                 if r["type"] == "TXT" and r["name"].rstrip(".") == wanted), None)


def main() -> None:
    api("POST", "/domains", {"name": DOMAIN})
    alice, bob = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
    for address in (alice, bob):
        api("POST", "/mailboxes", {"address": address, "password": PASSWORD})
    wait_for("IMAPS login of the new mailbox", lambda: inbox(alice) is not None)
    print(f"e2e: {alice} and {bob} created through the API log in over IMAPS")

    wait_for("SMTP delivery from the internet", lambda: from_the_internet(alice, "inbound"),
             timeout=120)
    wait_for("the inbound message in INBOX over IMAPS", lambda: received(alice, "inbound"))
    print("e2e: mail from the internet on SMTP is in the mailbox over IMAPS")

    raw = wait_for("a DKIM-signed message through submission", lambda: submitted(bob, alice))
    signature = dkim.DKIM(raw)
    if not signature.verify(dnsfunc=dkim_txt):
        headers = raw.split(b"\r\n\r\n", 1)[0].decode(errors="replace")
        keys = [(r["name"], r["value"][:60]) for r in api("GET", f"/domains/{DOMAIN}/dns")[
            "records"] if "_domainkey" in r["name"]]
        raise StepFailed(f"DKIM did not verify; headers:\n{headers}\nkeys the API names: {keys}")
    if signature.domain != DOMAIN.encode():
        raise StepFailed(f"DKIM d={signature.domain!r}, expected {DOMAIN}")
    print(f"e2e: submission signs: DKIM d={DOMAIN} verifies against the published key")


def _smtp_reply(reader) -> bytes:
    lines = [reader.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(reader.readline())
    return b"".join(lines)


def served_certificate(port_name: str, context: ssl.SSLContext) -> x509.Certificate:
    """What a new client is given on one port, verified against `context` (chain and name)."""
    raw = socket.create_connection(("127.0.0.1", PORT[port_name]), 10)
    try:
        if port_name in ("SMTP", "SUBMISSION"):  # STARTTLS
            reader = raw.makefile("rb")
            _smtp_reply(reader)
            raw.sendall(b"EHLO client.example\r\n")
            _smtp_reply(reader)
            raw.sendall(b"STARTTLS\r\n")
            if not (reply := _smtp_reply(reader)).startswith(b"220"):
                raise StepFailed(f"STARTTLS on {port_name}: {reply!r}")
        with context.wrap_socket(raw, server_hostname=HOST) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    finally:
        raw.close()


def certificates(ca_file: str, not_serials: set[int], timeout: float) -> dict[str, int]:
    """Wait until every TLS port presents a certificate for HOST from the CA of `ca_file` whose
    serial is not among `not_serials`; return the serials by port."""
    context = ssl.create_default_context(cafile=ca_file)  # these roots only, hostname checked

    def probe() -> dict[str, int] | None:
        serials = {}
        for port_name in ("HTTPS", "SMTP", "SUBMISSION", "SUBMISSIONS", "IMAPS"):
            try:
                serials[port_name] = served_certificate(port_name, context).serial_number
            except ssl.SSLCertVerificationError as exc:
                probe.last = f"{port_name}: {exc.verify_message}"
                return None
            if serials[port_name] in not_serials:
                probe.last = f"{port_name}: still serial {serials[port_name]:x}"
                return None
        return serials

    probe.last = None
    try:
        return wait_for("a certificate from the ACME CA on every TLS port", probe, timeout)
    except StepFailed as exc:
        raise StepFailed(f"{exc}; last: {probe.last}") from None


def certificates_main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="e2e.py certificates")
    parser.add_argument("--ca", required=True, help="PEM roots of the ACME CA")
    parser.add_argument("--not-serials", help="a file of serials (hex) that must be gone")
    parser.add_argument("--write-serials", help="write the serials seen (hex) to this file")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    old = set()
    if args.not_serials:
        with open(args.not_serials) as f:
            old = {int(word, 16) for word in f.read().split()}
    serials = certificates(args.ca, old, args.timeout)
    if args.write_serials:
        with open(args.write_serials, "w") as f:
            f.write(" ".join(f"{serial:x}" for serial in serials.values()) + "\n")
    shown = ", ".join(f"{name} {serial:x}" for name, serial in serials.items())
    print(f"e2e: {HOST}'s certificate from the ACME CA on every TLS port ({shown})")


if __name__ == "__main__":
    try:
        if sys.argv[1:2] == ["certificates"]:
            certificates_main(sys.argv[2:])
        else:
            TOKEN = os.environ["E2E_TOKEN"]
            main()
    except StepFailed as exc:
        print(f"e2e: FAIL: {exc}", file=sys.stderr)
        sys.exit(1)
