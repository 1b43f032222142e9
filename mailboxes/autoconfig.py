"""Mail client self-configuration: Thunderbird autoconfig, Outlook autodiscover (POX) and an
Apple configuration profile. The builders are pure; the views below serve them.

Clients ask at a host named after the mail domain (autoconfig.<domain>, autodiscover.<domain>),
which cannot all be in ALLOWED_HOSTS: `mailhost.hosts.HostRoutingMiddleware` routes those
hosts, for hosted domains only, to the views below. On the portal's own names (the mail host
among them) the same views are reached through the URLconf.
"""

import plistlib
import uuid
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from mailboxes.selectors import hosted_domain
from mailhost.endpoints import client_endpoints
from mailhost.names import InvalidName, normalise_domain, split_address

THUNDERBIRD_PATHS = ("/.well-known/autoconfig/mail/config-v1.1.xml", "/mail/config-v1.1.xml")
AUTODISCOVER_PATHS = ("/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml")
MAX_AUTODISCOVER_BYTES = 16 * 1024
_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
_AUTODISCOVER_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"


def servers() -> dict:
    """What a client connects to: host, ports and security (the implicit-TLS ports first).

    From mailhost.endpoints, the one source the SRV records use too: the ports that answer.
    """
    endpoints = client_endpoints()
    return {
        "host": endpoints.host,
        "imap": list(endpoints.imap_servers),
        "smtp": list(endpoints.smtp_servers),
        "dav_port": endpoints.dav,
        "dav_url": endpoints.dav_url,  # CalDAV and CardDAV (Radicale behind the edge)
    }


def thunderbird_xml(domain: str) -> str:
    s = servers()
    host = escape(s["host"])
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<clientConfig version="1.1">',
        f'  <emailProvider id="{escape(domain)}">',
        f"    <domain>{escape(domain)}</domain>",
        f"    <displayName>{escape(domain)} mail</displayName>",
        f"    <displayShortName>{escape(domain)}</displayShortName>",
    ]
    for tag, kind, entries in (
        ("incomingServer", "imap", s["imap"]),
        ("outgoingServer", "smtp", s["smtp"]),
    ):
        for port, security in entries:
            parts += [
                f'    <{tag} type="{kind}">',
                f"      <hostname>{host}</hostname>",
                f"      <port>{port}</port>",
                f"      <socketType>{security}</socketType>",
                "      <authentication>password-cleartext</authentication>",
                "      <username>%EMAILADDRESS%</username>",
                f"    </{tag}>",
            ]
    parts += ["  </emailProvider>", "</clientConfig>", ""]
    return "\n".join(parts)


def autodiscover_xml(address: str) -> str:
    s = servers()
    protocols = []
    for kind, (port, _security) in (("IMAP", s["imap"][0]), ("SMTP", s["smtp"][0])):
        protocols.append(
            "      <Protocol>\n"
            f"        <Type>{kind}</Type>\n"
            f"        <Server>{escape(s['host'])}</Server>\n"
            f"        <Port>{port}</Port>\n"
            "        <DomainRequired>off</DomainRequired>\n"
            f"        <LoginName>{escape(address)}</LoginName>\n"
            "        <SPA>off</SPA>\n"
            "        <SSL>on</SSL>\n"
            "        <AuthRequired>on</AuthRequired>\n"
            "      </Protocol>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{_AUTODISCOVER_NS}">\n'
        f'  <Response xmlns="{_RESPONSE_NS}">\n'
        "    <Account>\n"
        "      <AccountType>email</AccountType>\n"
        "      <Action>settings</Action>\n"
        + "".join(protocols)
        + "    </Account>\n  </Response>\n</Autodiscover>\n"
    )


def dav_payloads(address: str, s: dict, reverse_dns: str) -> list[dict]:
    """The calendar (CalDAV) and contacts (CardDAV) accounts of the same mailbox: the same
    user name and password, the principal at <dav url><address>/."""
    payloads = []
    for kind, label in (("CalDAV", "Calendars"), ("CardDAV", "Contacts")):
        lower = kind.lower()
        payloads.append({
            "PayloadType": f"com.apple.{lower}.account",
            "PayloadVersion": 1,
            "PayloadIdentifier":
                f"{reverse_dns}.{lower}.{uuid.uuid5(uuid.NAMESPACE_URL, address)}",
            "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{lower}:{address}")).upper(),
            "PayloadDisplayName": f"{label} of {address}",
            f"{kind}AccountDescription": f"{label} ({address})",
            f"{kind}HostName": s["host"],
            f"{kind}Port": s["dav_port"],
            f"{kind}PrincipalURL": f"{s['dav_url']}{address}/",
            f"{kind}UseSSL": True,
            f"{kind}Username": address,
        })
    return payloads


def mobileconfig(address: str, display_name: str = "") -> bytes:
    """An (unsigned) Apple configuration profile for one IMAP account and its calendars and
    contacts; no password in it — the device asks for it on install."""
    s = servers()
    imap_port, _ = s["imap"][0]
    smtp_port, _ = s["smtp"][0]
    domain = address.rsplit("@", 1)[1]
    reverse_dns = ".".join(reversed(s["host"].split(".")))
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse_dns}.mail.{uuid.uuid5(uuid.NAMESPACE_URL, address)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "mail:" + address)).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountName": display_name or address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerHostName": s["host"],
        "IncomingMailServerPortNumber": imap_port,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": s["host"],
        "OutgoingMailServerPortNumber": smtp_port,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingPasswordSameAsIncomingPassword": True,
        "PreventMove": False,
        "SMIMEEnabled": False,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{reverse_dns}.profile.{uuid.uuid5(uuid.NAMESPACE_URL, address)}",
        "PayloadUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "profile:" + address)).upper(),
        "PayloadDisplayName": f"Mail for {address}",
        "PayloadDescription": f"Sets up {address} ({domain}) in Apple Mail, Calendar and "
                              "Contacts.",
        "PayloadOrganization": domain,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account, *dav_payloads(address, s, reverse_dns)],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


# --- views -------------------------------------------------------------------------------------


def _hosted(domain_name: str):
    try:
        return hosted_domain(normalise_domain(domain_name))
    except InvalidName:
        return None


@require_GET
def thunderbird(request, host_domain: str | None = None):
    """?emailaddress=user@domain, or the domain of the autoconfig.<domain> host."""
    address = request.GET.get("emailaddress", "")
    name = address.rpartition("@")[2] if "@" in address else host_domain
    domain = _hosted(name) if name else None
    if domain is None:
        return HttpResponse("No mail is hosted here for that domain.\n", status=404,
                            content_type="text/plain")
    return HttpResponse(thunderbird_xml(domain.name), content_type="application/xml")


@csrf_exempt
@require_POST
def autodiscover(request):
    """Outlook's POX autodiscover: the request names the address; the answer gives IMAP/SMTP."""
    if len(request.body) > MAX_AUTODISCOVER_BYTES:
        return HttpResponseBadRequest("Request too large.\n", content_type="text/plain")
    try:
        root = SafeET.fromstring(request.body)
    except Exception:  # defusedxml raises several types for hostile or broken XML
        return HttpResponseBadRequest("Send an Autodiscover request.\n", content_type="text/plain")
    found = [el.text for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "EMailAddress"]
    try:
        local_part, domain_name = split_address((found[0] or "").strip() if found else "")
    except InvalidName:
        return HttpResponseBadRequest("No valid EMailAddress.\n", content_type="text/plain")
    if _hosted(domain_name) is None:
        return HttpResponse("No mail is hosted here for that domain.\n", status=404,
                            content_type="text/plain")
    return HttpResponse(autodiscover_xml(f"{local_part}@{domain_name}"),
                        content_type="application/xml")
