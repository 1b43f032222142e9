import pytest

from tests.delivery import fake_mx


@pytest.fixture
def internet(mail_stack):
    """The fake internet MX that the session's stack sends all *.example mail to."""
    host, port = mail_stack.cfg.internet_mx.rsplit(":", 1)
    mx, controller = fake_mx.start(host, int(port))
    try:
        yield mx
    finally:
        controller.stop()
