import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from mailboxes.models import Alias, Domain, Mailbox
from mailhost.passwords import hash_password
from nodes.changes import node_default
from tenants.models import Membership, Organisation

TEST_PASSWORD = "correct horse battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@operators.test")
    email = factory.LazyAttribute(lambda u: u.username)
    password = factory.django.Password(TEST_PASSWORD)


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation

    slug = factory.Sequence(lambda n: f"org-{n}")
    name = factory.Sequence(lambda n: f"Client {n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = "admin"


class DomainFactory(factory.django.DjangoModelFactory):
    """A bare domain row (no DKIM key, no node change): for selector and access tests.

    Tests of behaviour that reaches the mail stack create domains through the service instead.
    """

    class Meta:
        model = Domain

    organisation = factory.SubFactory(OrganisationFactory)
    node = factory.LazyFunction(node_default)
    name = factory.Sequence(lambda n: f"client{n}.test")
    # Verified, like the special-use names it makes; pass verified_at=None (and
    # verification_method="") for a claim still waiting for its proof.
    verified_at = factory.LazyFunction(timezone.now)
    verification_method = factory.LazyAttribute(lambda d: "staff" if d.verified_at else "")


class MailboxFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Mailbox

    domain = factory.SubFactory(DomainFactory)
    local_part = factory.Sequence(lambda n: f"user{n}")
    password_hash = factory.LazyFunction(lambda: hash_password(TEST_PASSWORD, rounds=4))
    quota_mb = 1024


class AliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alias

    domain = factory.SubFactory(DomainFactory)
    local_part = factory.Sequence(lambda n: f"alias{n}")
    destinations = factory.LazyAttribute(lambda a: [f"someone@{a.domain.name}"])


class AppPasswordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "mailboxes.AppPassword"

    mailbox = factory.SubFactory(MailboxFactory)
    name = factory.Sequence(lambda n: f"Device {n}")
    password_hash = factory.LazyFunction(lambda: hash_password(TEST_PASSWORD, rounds=4))
