import pytest

from tests.delivery import fake_mx
from tests.inbound.conftest import host_domain
from tests.security.two_tenants import forget_rows


@pytest.fixture
def internet(mail_stack):
    """The fake internet MX that the session's stack sends all *.example mail to."""
    host, port = mail_stack.cfg.internet_mx.rsplit(":", 1)
    mx, controller = fake_mx.start(host, int(port))
    try:
        yield mx
    finally:
        controller.stop()


@pytest.fixture
def hosted(stack_node, mail_stack):
    """A factory of hosted domains; their lookup rows leave the shared node afterwards."""
    made = []

    def make(**kwargs):
        made.append(host_domain(stack_node, mail_stack, **kwargs))
        return made[-1]

    yield make
    forget_rows(mail_stack, *(h.name for h in made))
