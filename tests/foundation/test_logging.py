"""Errors reach a log an operator reads, with the id of the request that caused them."""

import urllib.error
import urllib.request

import pytest
from django.test import Client

from tests.portal import running_portal
from tests.stack import free_ports, wait_for


def get(url: str, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


@pytest.mark.django_db
def test_it_logs_api_errors_with_their_request_id_in_var_log():
    closed = free_ports(1)[0]  # the database "goes away": nothing listens there
    with running_portal(DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/gone") as portal:
        status, headers = get(
            f"{portal.url}/api/v1/mailboxes", {"Authorization": "Bearer mh_whatever"}
        )
        assert status == 503
        request_id = headers["X-Request-ID"]
        wait_for(lambda: request_id in portal.log(), timeout=20)
        lines = [line for line in portal.log().splitlines() if request_id in line]
    assert any(" ERROR " in line and "database unavailable" in line for line in lines), lines


@pytest.mark.django_db
def test_it_keeps_a_proxys_request_id_but_never_a_forged_log_line():
    client = Client()
    kept = client.get("/api/v1/health", headers={"X-Request-ID": "proxy-1234abcd"})
    assert kept["X-Request-ID"] == "proxy-1234abcd"
    forged = client.get("/api/v1/health", headers={"X-Request-ID": "x\nERROR forged"})
    assert "\n" not in forged["X-Request-ID"] and "forged" not in forged["X-Request-ID"]
    assert len(forged["X-Request-ID"]) == 32
