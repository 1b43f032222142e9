"""Building a message with Python's email package: pure, no I/O, no Django models.

What a caller may put in a message is decided here: which header fields (an allow-list), how
large a part and the whole message may be, and the fields we set ourselves (From, To, Cc,
Reply-To, Subject, Date, Message-ID, MIME structure). Bcc never reaches a header.
"""

import email.policy
import email.utils
import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage

from mailhost.errors import Invalid, TooLarge

# Seed 002's limits: the whole message, and any one part (body or attachment), decoded.
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_PART_BYTES = 18 * 1024 * 1024
# Header fields a caller may add. Everything else is ours (From, To, Date, Message-ID, MIME),
# the node's (Received, DKIM-Signature, Return-Path) or changes who the author seems to be
# (Sender, Resent-*) or how the node treats the message (Auto-Submitted: the sender policy).
ALLOWED_HEADERS = frozenset({
    "list-unsubscribe", "list-unsubscribe-post", "list-id", "list-help", "list-archive",
    "in-reply-to", "references", "precedence", "keywords", "comments",
})
_CUSTOM_X = re.compile(r"^X-[A-Za-z0-9][A-Za-z0-9-]{0,60}$")
_RESERVED_X = ("x-mailhost-", "x-original-", "x-spam", "x-rspamd")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_POLICY = email.policy.SMTP.clone(max_line_length=78)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Draft:
    """What the caller asked for, checked for grammar by the API schema already."""

    sender: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    sender_name: str = ""
    subject: str = ""
    text: str | None = None
    html: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    attachments: tuple[Attachment, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()
    recipients: tuple[tuple[str, str], ...] = field(init=False)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for kind, addresses in (("to", self.to), ("cc", self.cc), ("bcc", self.bcc)):
            for address in addresses:
                seen.setdefault(address, kind)  # one delivery per address, its first role
        object.__setattr__(self, "recipients", tuple(seen.items()))


def check_header(name: str) -> str:
    """The header field name as we will write it, or Invalid naming the allow-list."""
    lower = name.lower()
    if lower in ALLOWED_HEADERS:
        return name
    if _CUSTOM_X.match(name) and not lower.startswith(_RESERVED_X):
        return name
    raise Invalid(
        f"The header field {name!r} may not be set: use X-… fields of your own or one of "
        f"{', '.join(sorted(ALLOWED_HEADERS))}.",
        field="headers",
        code="header_not_allowed",
    )


def check_content_type(value: str) -> str:
    value = value.strip().lower()
    if not _CONTENT_TYPE.match(value) or value.startswith("multipart/"):
        raise Invalid(f"{value!r} is not a content type for an attachment.",
                      field="attachments", code="invalid_content_type")
    return value


def check_part_sizes(draft: Draft) -> None:
    parts = [("text", len((draft.text or "").encode())), ("html", len((draft.html or "").encode()))]
    parts += [(f"attachment {a.filename!r}", len(a.content)) for a in draft.attachments]
    for what, size in parts:
        if size > MAX_PART_BYTES:
            raise TooLarge(f"The {what} is {size} bytes; a part may be at most {MAX_PART_BYTES}.")
    total = sum(size for _, size in parts)
    if total > MAX_MESSAGE_BYTES:
        raise TooLarge(f"The message holds {total} bytes; at most {MAX_MESSAGE_BYTES} are allowed.")


def _address(raw: str, name: str = "") -> Address:
    local, _, domain = raw.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def compose(draft: Draft, *, message_id: str, date: float | None = None) -> bytes:
    """The message as it goes to the node: CRLF line ends, ready for SMTP DATA."""
    check_part_sizes(draft)
    msg = EmailMessage(policy=_POLICY)
    msg["From"] = _address(draft.sender, draft.sender_name)
    if draft.to:
        msg["To"] = [_address(a) for a in draft.to]
    if draft.cc:
        msg["Cc"] = [_address(a) for a in draft.cc]
    if not draft.to and not draft.cc:
        msg["To"] = "undisclosed-recipients:;"
    if draft.reply_to:
        msg["Reply-To"] = [_address(a) for a in draft.reply_to]
    msg["Subject"] = draft.subject
    msg["Date"] = email.utils.formatdate(date, localtime=False)
    msg["Message-ID"] = message_id
    msg["MIME-Version"] = "1.0"
    for name, value in draft.headers:
        msg[check_header(name)] = value
    _set_body(msg, draft)
    raw = msg.as_bytes(policy=_POLICY)
    if len(raw) > MAX_MESSAGE_BYTES * 4 // 3 + 1024 * 1024:  # base64 of the limit, plus headers
        raise TooLarge(f"The encoded message is {len(raw)} bytes: too large.")
    return raw


def _set_body(msg: EmailMessage, draft: Draft) -> None:
    text = draft.text if draft.text is not None else ("" if draft.html is None else None)
    if text is not None:
        msg.set_content(text, cte="quoted-printable")
        if draft.html is not None:
            msg.add_alternative(draft.html, subtype="html", cte="quoted-printable")
    else:
        msg.set_content(draft.html, subtype="html", cte="quoted-printable")
    for attachment in draft.attachments:
        maintype, subtype = attachment.content_type.split("/", 1)
        msg.add_attachment(attachment.content, maintype=maintype, subtype=subtype,
                           filename=attachment.filename)
