import pytest

from tests.portal import running_portal


@pytest.fixture(scope="module")
def portal(django_db_setup, django_db_blocker):
    """The portal as `make up` runs it (gunicorn, two processes) on this run's database."""
    with django_db_blocker.unblock(), running_portal() as running:
        yield running
