"""Shared by the outbound tests: a hosted sending domain with a token, and DKIM checks."""

import dns.message
import dns.query

from mailhost.backend.stack import Stack
from tests.api.conftest import ApiClient, make_token
from tests.inbound.conftest import host_domain
from tests.stack import unique_domain


def internet_address(local: str = "rcpt") -> str:
    """A recipient "on the internet": *.example goes to the fake MX."""
    return f"{local}@{unique_domain('net').removesuffix('.test')}.example"


def sender_setup(node, stack: Stack, *, mailboxes=("news",)):
    """A hosted domain (MX, DKIM published by the node's resolver) and a read-write client of
    its organisation."""
    hosted = host_domain(node, stack, prefix="out", mailboxes=mailboxes)
    client = ApiClient(make_token(hosted.domain.organisation))
    return hosted, client


def published_txt(stack: Stack):
    """dkimpy's dnsfunc, answering from the node's resolver: what the world would see."""

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        query = dns.message.make_query(name.decode(), "TXT")
        host, port = stack.address("resolver")
        reply = dns.query.udp(query, host, port=port, timeout=timeout)
        for rrset in reply.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return txt
