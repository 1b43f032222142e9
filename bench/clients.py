"""Small clients: the portal's JSON API and pages over real HTTP, an SMTP sender.

(IMAP probes live in bench.imap.)
"""

import http.client
import json
import smtplib
import time


class Api:
    """The portal's JSON API over real HTTP (gunicorn), one connection per request."""

    def __init__(self, port: int, token: str):
        self.port, self.token = port, token

    def request(
        self, method: str, path: str, body=None, *, timeout: float = 30, headers: dict | None = None
    ) -> tuple[int, object, float]:
        """(status, parsed body, seconds from sending to the whole response read)."""
        data = json.dumps(body).encode() if body is not None else None
        sent_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if data is not None:
            sent_headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            started = time.perf_counter()
            conn.request(method, f"/api/v1{path}", body=data, headers=sent_headers)
            response = conn.getresponse()
            raw = response.read()
            elapsed = time.perf_counter() - started
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:500]
        return response.status, parsed, elapsed

    def get_page(self, path: str, cookies: dict[str, str]) -> tuple[int, float, int]:
        """A page with a session cookie: (status, seconds, bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        try:
            started = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": cookie})
            response = conn.getresponse()
            size = len(response.read())
            return response.status, time.perf_counter() - started, size
        finally:
            conn.close()


def smtp_batch(address: tuple[str, int], sender: str, jobs: list[tuple[str, bytes]]) -> int:
    """Send every (recipient, message) over one SMTP session; returns how many were accepted."""
    accepted = 0
    with smtplib.SMTP(*address, timeout=60) as client:
        client.ehlo("client.bench.test")
        for recipient, message in jobs:
            refused = client.sendmail(sender, [recipient], message)
            accepted += not refused
    return accepted

