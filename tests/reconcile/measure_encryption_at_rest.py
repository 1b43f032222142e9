"""What encryption at rest costs, encrypted vs plain, twice each on one stack: delivery over
SMTP (messages/s, 300 × 2 kB, one connection each), an IMAP FETCH of all 300 bodies (s) and
an IMAP login (ms). A measurement, not a test: its name keeps it out of the suite; run it by
path (docs/operations.md gives the command and figures). It asserts nothing about time."""

import time

import pytest

from tests.factories import OrganisationFactory
from tests.reconcile.test_encryption_at_rest import new_mailbox, set_encryption
from tests.stack import _imap, imap_login, make_message, smtp_send, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.django_db(transaction=True)]
N = 300


def count(stack, mailbox, password):
    client = _imap(stack)
    try:
        client.login(mailbox.address, password)
        _, data = client.select("INBOX", readonly=True)
        return int(data[0])
    finally:
        client.logout()


def fetch_all(stack, mailbox, password):
    client = _imap(stack)
    try:
        client.login(mailbox.address, password)
        client.select("INBOX", readonly=True)
        _, data = client.fetch(f"1:{N}", "(BODY.PEEK[])")
        return len(data)
    finally:
        client.logout()


def test_it_measures_encrypted_against_plain(reconcile_worker, mail_stack):
    org_a, org_b = OrganisationFactory(), OrganisationFactory()
    enc, enc_pw = new_mailbox(org_a, "m-enc")
    plain, plain_pw = new_mailbox(org_b, "m-plain")
    set_encryption(org_a, True)
    body = "x" * 2000 + "\n"
    results = {}
    for _round in range(2):
        for name, mb, pw in (("plain", plain, plain_pw), ("encrypted", enc, enc_pw)):
            start_count = count(mail_stack, mb, pw)
            t0 = time.monotonic()
            for i in range(N):
                smtp_send(mail_stack, "smtp", "f@outside.example", mb.address,
                          make_message("f@outside.example", mb.address, f"m{i}", body))
            wait_for(lambda mb=mb, pw=pw, c=start_count:
                     count(mail_stack, mb, pw) >= c + N, timeout=300,
                     interval=0.2)
            deliver = time.monotonic() - t0
            t0 = time.monotonic()
            fetch_all(mail_stack, mb, pw)
            fetch = time.monotonic() - t0
            t0 = time.monotonic()
            for _ in range(100):
                assert imap_login(mail_stack, mb.address, pw)
            login = (time.monotonic() - t0) / 100
            results.setdefault(name, []).append((N / deliver, fetch, login * 1000))
    print("\nRESULTS", results)
