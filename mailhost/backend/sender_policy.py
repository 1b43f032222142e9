"""The sender-binding rule: who may put which address in From:, per listener. Pure: no I/O.

The milter (`mailhost.backend.milter`) feeds it the listener, the SASL login, the envelope
sender and the header fields of one message, and a `SenderStore` that answers from the node's
lookup store. `check` returns nothing when the message may go on to the DKIM signer and raises
`Refused` otherwise. Why the rule is what it is (README, "Sender binding"):

* Submission (587, 465): every message is authenticated. The header From (exactly one field,
  one mailbox) and the Sender field, if present, must be addresses the login may send as: the
  `sender_logins` relation Postfix's `reject_sender_login_mismatch` uses for the envelope. The
  envelope sender, when not null, must be one too (Postfix checks it already; repeated here
  so the rule holds on its own). A null envelope sender is then harmless: OpenDKIM falls back
  to the header From, which has just been verified. Reply-To stays free: it says where replies
  go, not who wrote the message, and receivers neither authenticate nor display it as author.
* Internal (2526, loopback only): Dovecot's Sieve actions and the portal. Pigeonhole is set to
  send vacation replies and notifications with the mailbox that received the message as
  envelope sender, and redirects with the same (sieve_*_envelope_from = recipient), so the
  envelope sender is the identity of whoever caused the message. An auto-generated message
  (any Auto-Submitted field whose value is not exactly "no") must carry a header From (and a
  Sender, if any) that identity may send as: a script's `vacation :from` or `notify :from`
  cannot claim another tenant's address. A message that is not auto-generated is a forward
  (or the portal's own mail): it keeps its original author's From, and OpenDKIM signs it with
  the envelope sender's domain only (SenderMacro). A null envelope sender gives no identity
  and would make OpenDKIM sign by the header, so it is refused when the header From is in a
  hosted domain.

What Pigeonhole 0.5.19 (Debian 12) was seen to do, over a real ManageSieve upload:
`vacation :from` and `notify :from` put any address in From: (no check of their own);
`vacation :mime` content lands as extra header lines after Pigeonhole's own (a second From:,
a Sender:, "Auto-Submitted: no" all went out); a `mailto:` notification drops From= and
Auto-Submitted= from the URI but keeps other fields; vacation replies carry "Auto-Submitted:
auto-replied (vacation)", notifications "auto-notified; owner-email=…"; `redirect` of a
message whose envelope sender is null keeps the null sender (whatever
sieve_redirect_envelope_from says); a refused redirect or vacation reply is logged and the
message is still kept in the inbox. `editheader` is not enabled.

Header fields a user controls (`vacation :mime` content becomes header lines) can only make a
message look *more* automatic or *more* ambiguous: a second From or Sender field is refused,
and any non-"no" Auto-Submitted wins over an added "Auto-Submitted: no".

The address in From: is read by one strict grammar (one mailbox, `addr-spec` or
`phrase <addr-spec>`, no groups, comments, lists, quoted local parts or obsolete forms) and
confirmed by Python's RFC 5322 parser; anything else is refused rather than guessed at, so no
other parser (OpenDKIM's, a receiver's) can read a different address out of a field we passed.
"""

import re
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from typing import Protocol

SUBMISSION = "submission"
INTERNAL = "internal"
# Postfix's milter_macro_daemon_name per listener (master.cf) → which rule applies.
LISTENERS = {
    "mailhost-submission": SUBMISSION,
    "mailhost-submissions": SUBMISSION,
    "mailhost-internal": INTERNAL,
}

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_ADDR_SPEC = rf"{_ATEXT}+(?:\.{_ATEXT}+)*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?" \
             r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
# A display name: words (atoms, encoded words, non-ASCII text) and quoted strings without
# backslash escapes, separated by spaces. No specials that start a comment, group or list.
_WORD = r'(?:[^\s"(),.:;<>@\[\]\\]+|"[^"\\@<>\r\n]*")'
_PHRASE = rf"{_WORD}(?:[ \t]+{_WORD}|\.)*"
_BARE = re.compile(rf"^[ \t]*({_ADDR_SPEC})[ \t]*$")
_NAMED = re.compile(rf"^[ \t]*(?:{_PHRASE})?[ \t]*<({_ADDR_SPEC})>[ \t]*$")
_COMMENT = re.compile(r"\([^()]*\)")
_headers = HeaderRegistry()


class Refused(Exception):
    """The message is refused. `code`/`status`/`text` become the SMTP reply."""

    def __init__(self, text: str, *, code: str = "550", status: str = "5.7.1"):
        super().__init__(text)
        self.code, self.status, self.text = code, status, text


class SenderStore(Protocol):
    def may_send_as(self, login: str, address: str) -> bool: ...

    def is_hosted(self, domain: str) -> bool: ...


@dataclass(frozen=True)
class Envelope:
    listener: str  # SUBMISSION or INTERNAL
    login: str | None  # the SASL login, lower case; None when unauthenticated
    sender: str  # MAIL FROM, without brackets; "" for the null sender


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")


def parse_mailbox(field: str, value: str) -> str:
    """The one address in a From/Sender field value, lower case; Refused if it is anything but
    exactly one plain mailbox."""
    text = unfold(value)
    match = _BARE.match(text) or _NAMED.match(text)
    if not match:
        raise Refused(f"{field}: must hold exactly one plain address (no groups, lists, comments "
                      "or quoted local parts); this one is refused rather than guessed at")
    address = match.group(1).lower()
    parsed = _headers(field, text)
    confirmed = [a.addr_spec.lower() for a in getattr(parsed, "addresses", ())]
    # "Bob J. Builder <bob@b.test>" is obsolete syntax (RFC 5322 4.1) that mail clients still
    # send; a dot in a display name cannot change which address the field names.
    defects = [d for d in parsed.defects if str(d) != "period in 'phrase'"]
    if defects or len(getattr(parsed, "groups", ())) != 1 or confirmed != [address]:
        raise Refused(f"{field}: is malformed or ambiguous; refused rather than guessed at")
    return address


def single(headers: list[tuple[str, str]], field: str, *, required: bool) -> str | None:
    """The address of the one `field` header, None if absent and allowed; Refused otherwise."""
    values = [value for name, value in headers if name.strip().lower() == field.lower()]
    if not values:
        if required:
            raise Refused(f"the message needs exactly one {field}: field")
        return None
    if len(values) > 1:
        raise Refused(f"the message has {len(values)} {field}: fields; exactly one is allowed")
    return parse_mailbox(field, values[0])


def is_auto_submitted(headers: list[tuple[str, str]]) -> bool:
    """True when any Auto-Submitted field says anything but "no" (RFC 3834): adding fields can
    only make a message more automatic, never less."""
    for name, value in headers:
        if name.strip().lower() == "auto-submitted":
            keyword = _COMMENT.sub("", unfold(value)).split(";")[0].strip().lower()
            if keyword != "no":
                return True
    return False


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[1]


def check(envelope: Envelope, headers: list[tuple[str, str]], store: SenderStore) -> None:
    if envelope.listener == SUBMISSION:
        _check_submission(envelope, headers, store)
    elif envelope.listener == INTERNAL:
        _check_internal(envelope, headers, store)
    else:  # a listener the policy does not know: never let its mail through unchecked
        raise Refused("sender policy: unknown listener", code="451", status="4.7.0")


def _check_submission(envelope: Envelope, headers, store: SenderStore) -> None:
    login = envelope.login
    if not login:
        raise Refused("authentication required", code="530", status="5.7.0")
    sender = envelope.sender.lower()
    if sender and not store.may_send_as(login, sender):
        raise Refused(f"envelope sender <{sender}> is not an address {login} may send as")
    for field, required in (("From", True), ("Sender", False)):
        address = single(headers, field, required=required)
        if address is not None and not store.may_send_as(login, address):
            raise Refused(f"{field}: <{address}> is not an address {login} may send as")


def _check_internal(envelope: Envelope, headers, store: SenderStore) -> None:
    sender = envelope.sender.lower()
    if not sender:
        author = single(headers, "From", required=True)
        if store.is_hosted(_domain(author)):
            raise Refused(f"a message with a null envelope sender may not claim From: <{author}> "
                          "of a hosted domain")
        return
    if not is_auto_submitted(headers):
        return  # a forward or the portal's mail: signed for the envelope's domain only
    for field, required in (("From", True), ("Sender", False)):
        address = single(headers, field, required=required)
        if address is not None and address != sender and not store.may_send_as(sender, address):
            raise Refused(f"an automatic reply or notification from <{sender}> may not claim "
                          f"{field}: <{address}>")
