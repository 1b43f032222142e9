import subprocess

import pytest

from tests.delivery.conftest import internet  # noqa: F401  (the fake internet MX fixture)
from tests.delivery.support import internet_address
from tests.inbound.conftest import PASSWORD, host_domain
from tests.routing import fake_relay
from tests.routing.support import postqueue
from tests.security.two_tenants import forget_rows
from tests.stack import make_message, smtp_send, wait_for


@pytest.fixture
def relay_host(settings):
    """A fake smarthost on loopback (login relay-user / relay-pass), which relays may use."""
    settings.MAILHOST_RELAY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    with fake_relay.running() as relay:
        yield relay


@pytest.fixture
def hosted_domains(stack_node, mail_stack):
    """A factory of hosted domains on the session's stack; their rows are dropped after."""
    made = []

    def make(**kwargs):
        made.append(host_domain(stack_node, mail_stack, **kwargs))
        return made[-1]

    yield make
    forget_rows(mail_stack, *(hosted.name for hosted in made))


@pytest.fixture
def deferred(hosted_domains, internet, mail_stack):  # noqa: F811
    """A factory: a message of a new hosted domain that the fake MX keeps deferring, once
    Postfix has it in the deferred queue; the test's messages are deleted afterwards."""
    made = []

    def make(prefix="q"):
        hosted = hosted_domains(prefix=prefix)
        sender, to = hosted.address("ceo"), internet_address("defer-1000-x")
        smtp_send(mail_stack, "submission", sender, to, make_message(sender, to, "stuck"),
                  login=(sender, PASSWORD))
        queue_id = wait_for(lambda: next(
            (qid for qid, item in postqueue(mail_stack).items()
             if item["sender"] == sender and item["queue_name"] == "deferred"), None), timeout=30)
        made.append(queue_id)
        return hosted, queue_id

    yield make
    for queue_id in made:
        subprocess.run(["postsuper", "-c", str(mail_stack.postfix_dir), "-d", queue_id],
                       capture_output=True)

