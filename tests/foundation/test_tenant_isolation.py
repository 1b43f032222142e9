"""Every service and selector, as every kind of actor: the tenant-isolation matrix.

Another organisation's object is NotFound (indistinguishable from a missing one); a viewer's
or read-only token's write is Forbidden; a member with a write role succeeds.
"""

from dataclasses import dataclass

import pytest

from mailboxes import selectors as mailbox_selectors
from mailboxes import services as mailbox_services
from mailhost.errors import Forbidden, NotFound
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.access import Actor
from tenants.models import ApiToken, Membership
from tests.factories import (
    AliasFactory,
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    OrganisationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@dataclass
class World:
    org: object
    domain: object
    mailbox: object
    deleted_mailbox: object
    alias: object
    token: object
    membership: object


def _token(org, read_only):
    raw = ApiToken.new_secret()
    return ApiToken.objects.create(
        organisation=org,
        name="t",
        token_hash=ApiToken.hash(raw),
        hint=raw[:10],
        read_only=read_only,
    )


@pytest.fixture
def world():
    org = OrganisationFactory()
    domain = DomainFactory(organisation=org, name="victim.test")
    return World(
        org=org,
        domain=domain,
        mailbox=MailboxFactory(domain=domain, local_part="alice"),
        deleted_mailbox=MailboxFactory(
            domain=domain, local_part="gone", deleted_at="2026-01-01T00:00Z"
        ),
        alias=AliasFactory(domain=domain, local_part="sales", destinations=["alice@victim.test"]),
        token=_token(org, read_only=False),
        membership=MembershipFactory(organisation=org, role="owner"),
    )


def _member(org, role) -> Actor:
    return Actor(user=MembershipFactory(organisation=org, role=role).user)


ACTORS = {
    "outsider_admin": lambda w: _member(OrganisationFactory(), "owner"),
    "outsider_token": lambda w: Actor(token=_token(OrganisationFactory(), read_only=False)),
    "no_membership": lambda w: Actor(user=UserFactory()),
    "viewer": lambda w: _member(w.org, "viewer"),
    "read_only_token": lambda w: Actor(token=_token(w.org, read_only=True)),
    "admin": lambda w: _member(w.org, "admin"),
    "write_token": lambda w: Actor(token=_token(w.org, read_only=False)),
}

ms, ts = mailbox_services, tenant_services
WRITES = {
    "domain_create": lambda a, w: ms.domain_create(actor=a, organisation=w.org, name="new.test"),
    "domain_update": lambda a, w: ms.domain_update(actor=a, domain=w.domain, status="disabled"),
    "domain_delete": lambda a, w: ms.domain_delete(
        actor=a, domain=DomainFactory(organisation=w.org)
    ),
    "mailbox_create": lambda a, w: ms.mailbox_create(
        actor=a, domain=w.domain, local_part="bob", password="long enough pw"
    ),
    "mailbox_update": lambda a, w: ms.mailbox_update(actor=a, mailbox=w.mailbox, quota_mb=5),
    "mailbox_set_password": lambda a, w: ms.mailbox_set_password(actor=a, mailbox=w.mailbox),
    "mailbox_set_status": lambda a, w: ms.mailbox_set_status(
        actor=a, mailbox=w.mailbox, status="suspended"
    ),
    "mailbox_rename": lambda a, w: ms.mailbox_rename(actor=a, mailbox=w.mailbox, local_part="al"),
    "mailbox_delete": lambda a, w: ms.mailbox_delete(actor=a, mailbox=w.mailbox),
    "mailbox_restore": lambda a, w: ms.mailbox_restore(actor=a, mailbox=w.deleted_mailbox),
    "alias_create": lambda a, w: ms.alias_create(
        actor=a, domain=w.domain, local_part="info", destinations=["x@elsewhere.test"]
    ),
    "alias_update": lambda a, w: ms.alias_update(actor=a, alias=w.alias, active=False),
    "alias_delete": lambda a, w: ms.alias_delete(actor=a, alias=w.alias),
}
# Token management is for people: a writer's token gets Forbidden (finding 11).
TOKEN_MANAGEMENT = {
    "api_token_create": lambda a, w: ts.api_token_create(actor=a, organisation=w.org, name="ci"),
    "api_token_revoke": lambda a, w: ts.api_token_revoke(actor=a, token=w.token),
}
OWNER_WRITES = {
    "membership_set": lambda a, w: ts.membership_set(
        actor=a, organisation=w.org, user=UserFactory(), role="viewer"
    ),
    "membership_remove": lambda a, w: ts.membership_remove(
        actor=a, membership=MembershipFactory(organisation=w.org, role="viewer")
    ),
    "invitation_create": lambda a, w: ts.invitation_create(
        actor=a, organisation=w.org, email="new@operators.test", role="viewer"
    ),
    "invitation_revoke": lambda a, w: ts.invitation_revoke(
        actor=a,
        invitation=ts.invitation_create(
            actor=Actor(user=w.membership.user),
            organisation=w.org,
            email=UserFactory.build().email,
            role="viewer",
        )[0],
    ),
}
READS = {
    "domain_get": lambda a, w: mailbox_selectors.domain_get(a, "victim.test"),
    "mailbox_get": lambda a, w: mailbox_selectors.mailbox_get(a, "alice@victim.test"),
    "alias_get": lambda a, w: mailbox_selectors.alias_get(a, "sales@victim.test"),
    "organisation_get": lambda a, w: tenant_selectors.organisation_get(a, w.org.slug),
    "audit_list": lambda a, w: list(tenant_selectors.audit_list(a, w.org)),
    "api_token_list": lambda a, w: list(tenant_selectors.api_token_list(a, w.org)),
}

OUTSIDERS = ["outsider_admin", "outsider_token", "no_membership"]
READ_ONLY = ["viewer", "read_only_token"]
WRITERS = ["admin", "write_token"]


@pytest.mark.parametrize("actor_kind", OUTSIDERS)
@pytest.mark.parametrize("service", sorted(WRITES | TOKEN_MANAGEMENT | OWNER_WRITES | READS))
def test_it_hides_another_tenants_objects(world, actor_kind, service):
    call = (WRITES | TOKEN_MANAGEMENT | OWNER_WRITES | READS)[service]
    with pytest.raises(NotFound):
        call(ACTORS[actor_kind](world), world)


@pytest.mark.parametrize("actor_kind", READ_ONLY)
@pytest.mark.parametrize("service", sorted(WRITES | TOKEN_MANAGEMENT | OWNER_WRITES))
def test_it_forbids_read_only_actors_to_write(world, actor_kind, service):
    with pytest.raises(Forbidden):
        (WRITES | TOKEN_MANAGEMENT | OWNER_WRITES)[service](ACTORS[actor_kind](world), world)


@pytest.mark.parametrize("actor_kind", WRITERS)
@pytest.mark.parametrize("service", sorted(WRITES))
def test_it_lets_writers_write(world, actor_kind, service):
    WRITES[service](ACTORS[actor_kind](world), world)


@pytest.mark.parametrize("service", sorted(TOKEN_MANAGEMENT))
def test_it_keeps_token_management_to_people(world, service):
    with pytest.raises(Forbidden):
        TOKEN_MANAGEMENT[service](ACTORS["write_token"](world), world)
    TOKEN_MANAGEMENT[service](ACTORS["admin"](world), world)


@pytest.mark.parametrize("service", sorted(OWNER_WRITES))
def test_it_keeps_member_management_to_owners(world, service):
    with pytest.raises(Forbidden):
        OWNER_WRITES[service](ACTORS["admin"](world), world)
    OWNER_WRITES[service](Actor(user=world.membership.user), world)


@pytest.mark.parametrize("actor_kind", READ_ONLY + WRITERS)
@pytest.mark.parametrize("service", sorted(READS))
def test_it_lets_members_read(world, actor_kind, service):
    READS[service](ACTORS[actor_kind](world), world)


def test_it_lists_only_the_actors_own_organisations_objects(world):
    other = OrganisationFactory()
    MailboxFactory(domain=DomainFactory(organisation=other))
    actor = _member(world.org, "viewer")
    assert {m.domain.organisation_id for m in mailbox_selectors.mailbox_list(actor)} == {
        world.org.pk
    }
    assert list(mailbox_selectors.domain_list(actor)) == [world.domain]


def test_it_keeps_the_last_owner(world):
    owner = Actor(user=world.membership.user)
    with pytest.raises(Exception, match="at least one owner"):
        ts.membership_remove(actor=owner, membership=world.membership)
    assert Membership.objects.filter(pk=world.membership.pk).exists()
