import pytest
from django.test import Client

from mailhost.redis import get_redis
from tests.factories import (
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
)


def client_for(user) -> Client:
    user.save()  # the factory sets the password without saving it (skip_postgeneration_save)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def org(db):
    return OrganisationFactory(slug="acme", name="Acme Ltd")


@pytest.fixture
def other_org(db):
    return OrganisationFactory(slug="globex", name="Globex")


@pytest.fixture
def owner(org):
    return MembershipFactory(organisation=org, role="owner").user


@pytest.fixture
def admin_user(org):
    return MembershipFactory(organisation=org, role="admin").user


@pytest.fixture
def viewer(org):
    return MembershipFactory(organisation=org, role="viewer").user


@pytest.fixture
def stranger(other_org):
    """An admin of another organisation: everything of `org` must be a 404 for them."""
    return MembershipFactory(organisation=other_org, role="admin").user


@pytest.fixture
def owner_client(owner):
    return client_for(owner)


@pytest.fixture
def admin_client_(admin_user):
    return client_for(admin_user)


@pytest.fixture
def viewer_client(viewer):
    return client_for(viewer)


@pytest.fixture
def stranger_client(stranger):
    return client_for(stranger)


@pytest.fixture
def domain(org):
    return DomainFactory(organisation=org, name="acme.test")


@pytest.fixture
def mailbox(domain):
    return MailboxFactory(domain=domain, local_part="anna", display_name="Anna Berg")


@pytest.fixture
def clean_rate_limits():
    client = get_redis()
    for key in client.scan_iter("mailhost:portal-login*"):
        client.delete(key)
    yield
    for key in client.scan_iter("mailhost:portal-login*"):
        client.delete(key)


@pytest.fixture
def unused_user(db):
    return UserFactory()


@pytest.fixture
def assert_constant_queries(django_assert_num_queries):
    """Load `path` at the current size, grow the list with `grow()`, and assert the page then
    runs exactly as many queries: a list page's cost must not depend on its length."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def check(client, path, grow):
        with CaptureQueriesContext(connection) as small:
            assert client.get(path).status_code == 200
        grow()
        with django_assert_num_queries(len(small.captured_queries)):
            response = client.get(path)
        assert response.status_code == 200
        return response

    return check


@pytest.fixture
def client_factory(db):
    return Client
