import pytest

from tests.inbound.conftest import host_domain
from tests.routing import fake_relay
from tests.security.two_tenants import forget_rows
from tests.stack import free_ports


@pytest.fixture
def relay_host(settings):
    """A fake smarthost on loopback (login relay-user / relay-pass), which relays may use."""
    settings.MAILHOST_RELAY_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    port = free_ports(1)[0]
    relay, controller = fake_relay.start("127.0.0.1", port, username="relay-user",
                                         password="relay-pass")
    relay.port = port
    try:
        yield relay
    finally:
        controller.stop()


@pytest.fixture
def hosted_domains(stack_node, mail_stack):
    """A factory of hosted domains on the session's stack; their rows are dropped after."""
    made = []

    def make(**kwargs):
        made.append(host_domain(stack_node, mail_stack, **kwargs))
        return made[-1]

    yield make
    forget_rows(mail_stack, *(hosted.name for hosted in made))
