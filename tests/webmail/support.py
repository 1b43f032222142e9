"""Roundcube through the edge, as a browser sees it (plain HTTP, cookies, a source address)."""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from mailboxes import services as mailbox_services
from mailhost.backend.stack import Stack
from nodes.reconcile import reconcile_incremental
from tenants.access import SYSTEM
from tests.factories import OrganisationFactory
from tests.stack import imap_login, unique_domain, wait_for

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the node's own certificate
PASSWORD = "holder-password-1"
_TITLE = re.compile(r"<title>(.*?)</title>", re.S)


class _FromAddress(HTTPAdapter):
    """Connect from a given loopback address (the ban tests act from 127.0.0.9 and others)."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


@dataclass
class Page:
    status: int
    url: str
    text: str

    @property
    def title(self) -> str:
        found = _TITLE.search(self.text)
        return found.group(1) if found else ""

    @property
    def signed_in(self) -> bool:
        """Roundcube's mail view (the login page carries a login form instead)."""
        return 'name="_pass"' not in self.text and '"task":"mail"' in self.text


class Browser:
    """A cookie jar talking to the stack's edge at https://127.0.0.1:<https>/webmail/."""

    def __init__(self, stack: Stack, source: str = "127.0.0.1"):
        self.base = f"https://127.0.0.1:{stack.cfg.ports['https']}"
        self.http = requests.Session()
        # verify=False on each request: a session-wide False loses to REQUESTS_CA_BUNDLE.
        self.http.mount("https://", _FromAddress(source))

    def get(self, path_and_query: str) -> Page:
        response = self.http.get(self.base + path_and_query, timeout=30, verify=False)
        return Page(response.status_code, response.url, response.text)

    def redeem(self, location: str) -> Page:
        """Follow the portal's redirect to the webmail (the SSO link)."""
        parts = urlsplit(location)
        return self.get(f"{parts.path}?{parts.query}")

    def inbox(self) -> Page:
        return self.get("/webmail/?_task=mail&_mbox=INBOX")

    def can_read_inbox(self) -> bool:
        """Whether Roundcube lists the INBOX (its own AJAX call, as the page makes it): a
        session whose IMAP login Dovecot now refuses still renders the page, not the mail."""
        page = self.inbox()
        token = re.search(r'"request_token":"([^"]+)"', page.text)
        if not page.signed_in or token is None:
            return False
        response = self.http.get(
            self.base + "/webmail/?_task=mail&_action=list&_mbox=INBOX&_remote=1",
            headers={"X-Roundcube-Request": token.group(1)}, timeout=30, verify=False,
        )
        body = response.text
        return response.status_code == 200 and "set_rowcount" in body and \
            "Connection to storage server failed" not in body

    def password_login(self, user: str, password: str) -> Page:
        form = self.get("/webmail/")
        token = re.search(r'name="_token" value="([^"]+)"', form.text).group(1)
        response = self.http.post(
            self.base + "/webmail/?_task=login",
            data={"_token": token, "_task": "login", "_action": "login", "_timezone": "UTC",
                  "_url": "", "_user": user, "_pass": password},
            timeout=30, verify=False,
        )
        return Page(response.status_code, response.url, response.text)


def sso_query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def holders(stack_node, mail_stack, *local_parts: str, org_name: str = "Acme Ltd"):
    """An organisation with a live domain and one mailbox per local part (password PASSWORD),
    reconciled onto the stack and able to log in over IMAP."""
    organisation = OrganisationFactory(name=org_name)
    domain = mailbox_services.domain_create(actor=SYSTEM, organisation=organisation,
                                            name=unique_domain("wm"))
    boxes = []
    for local in local_parts:
        box, _ = mailbox_services.mailbox_create(actor=SYSTEM, domain=domain, local_part=local,
                                                 password=PASSWORD)
        boxes.append(box)
    reconcile_incremental(stack_node)
    for box in boxes:
        wait_for(lambda box=box: imap_login(mail_stack, box.address, PASSWORD), timeout=30)
    return boxes
