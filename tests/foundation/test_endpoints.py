"""mailhost.endpoints: where mail clients are told to connect (the surfaces are tested in
tests/pages/test_client_endpoints.py)."""

from mailhost.endpoints import ClientEndpoints, client_endpoints, endpoints_from


def test_it_defaults_each_public_port_to_the_nodes_own():
    endpoints = endpoints_from(
        host="Mail.Example.NET.",
        node_ports={"imaps": 993, "imap": 143, "submissions": 465, "submission": 587},
        public_ports={"imaps": 0, "https": 0},
        portal_url="https://mail.example.net",
    )
    assert endpoints == ClientEndpoints("mail.example.net", 993, 143, 465, 587, 443, 443)
    assert endpoints.dav_url == "https://mail.example.net/dav/"
    mapped = endpoints_from(
        host="mail.example.net",
        node_ports={"imaps": 2993, "imap": 2143, "submissions": 2465, "submission": 2587},
        public_ports={"imaps": 993, "submissions": 465, "https": 8443},
        portal_url="http://mail.example.net:8000",
    )
    assert (mapped.imaps, mapped.imap, mapped.submissions, mapped.https) == (993, 2143, 465, 8443)
    assert mapped.dav == 8443


def test_it_sends_calendar_apps_to_the_edge_not_to_a_plain_http_portal():
    # `make up`: the portal URL is gunicorn's own plain-HTTP port; /dav/ is only on the edge.
    dev = endpoints_from(
        host="mail.localhost",
        node_ports={"imaps": 2993, "imap": 2143, "submissions": 2465, "submission": 2587,
                    "https": 2443},
        public_ports={},
        portal_url="http://mail.localhost:8000",
    )
    assert (dev.https, dev.dav, dev.dav_url) == (8000, 2443, "https://mail.localhost:2443/dav/")


def test_it_reads_the_endpoints_from_settings_at_call_time(settings):
    settings.MAILHOST_PORTS = dict(settings.MAILHOST_PORTS, imaps=3993)
    assert client_endpoints().imaps == 3993
