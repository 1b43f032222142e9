"""Every service and selector, as every kind of actor: the tenant-isolation matrix.

Another organisation's object is NotFound (indistinguishable from a missing one); a viewer's
or read-only token's write is Forbidden; a member with a write role succeeds, and what it wrote
is in the database (and in the audit log) afterwards; a member's read returns that object.
"""

from dataclasses import dataclass

import pytest

from mailboxes import selectors as mailbox_selectors
from mailboxes import services as mailbox_services
from mailboxes.models import Alias, Domain, Mailbox
from mailhost.errors import Forbidden, NotFound
from tenants import selectors as tenant_selectors
from tenants import services as tenant_services
from tenants.access import SYSTEM, Actor
from tenants.models import ApiToken, AuditEvent, Invitation, Membership
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
    empty_domain: object
    mailbox: object
    mailbox_hash: str  # its password hash as created: a password change must replace it
    deleted_mailbox: object
    alias: object
    token: object
    membership: object
    # What the owner-only writes act on: a member to remove, an invitation to withdraw, a user
    # to add.
    viewer_membership: object
    invitation: object
    new_user: object


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
    mailbox = MailboxFactory(domain=domain, local_part="alice")
    return World(
        org=org,
        domain=domain,
        empty_domain=DomainFactory(organisation=org, name="empty.victim.test"),
        mailbox=mailbox,
        mailbox_hash=mailbox.password_hash,
        deleted_mailbox=MailboxFactory(
            domain=domain, local_part="gone", deleted_at="2026-01-01T00:00Z"
        ),
        alias=AliasFactory(domain=domain, local_part="sales", destinations=["alice@victim.test"]),
        # Through the service, so the organisation has an audit event for audit_list to return.
        token=tenant_services.api_token_create(actor=SYSTEM, organisation=org, name="spare")[0],
        membership=MembershipFactory(organisation=org, role="owner"),
        viewer_membership=MembershipFactory(organisation=org, role="viewer"),
        invitation=tenant_services.invitation_create(
            actor=SYSTEM, organisation=org, email="invited@operators.test", role="viewer"
        )[0],
        new_user=UserFactory(),
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
    "domain_delete": lambda a, w: ms.domain_delete(actor=a, domain=w.empty_domain),
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
        actor=a, organisation=w.org, user=w.new_user, role="viewer"
    ),
    "membership_remove": lambda a, w: ts.membership_remove(actor=a, membership=w.viewer_membership),
    "invitation_create": lambda a, w: ts.invitation_create(
        actor=a, organisation=w.org, email="new@operators.test", role="viewer"
    ),
    "invitation_revoke": lambda a, w: ts.invitation_revoke(actor=a, invitation=w.invitation),
}


def _fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


# What each write leaves in the database: checked after a writer's call succeeds.
WRITTEN = {
    "domain_create": lambda w: Domain.objects.filter(organisation=w.org, name="new.test").exists(),
    "domain_update": lambda w: _fresh(w.domain).status == "disabled",
    "domain_delete": lambda w: not Domain.objects.filter(pk=w.empty_domain.pk).exists(),
    "mailbox_create": lambda w: Mailbox.objects.filter(
        domain=w.domain, local_part="bob", deleted_at=None
    ).exists(),
    "mailbox_update": lambda w: _fresh(w.mailbox).quota_mb == 5,
    "mailbox_set_password": lambda w: _fresh(w.mailbox).password_hash != w.mailbox_hash,
    "mailbox_set_status": lambda w: _fresh(w.mailbox).status == "suspended",
    "mailbox_rename": lambda w: _fresh(w.mailbox).local_part == "al",
    "mailbox_delete": lambda w: _fresh(w.mailbox).deleted_at is not None,
    "mailbox_restore": lambda w: _fresh(w.deleted_mailbox).deleted_at is None,
    "alias_create": lambda w: Alias.objects.filter(domain=w.domain, local_part="info").exists(),
    "alias_update": lambda w: _fresh(w.alias).active is False,
    "alias_delete": lambda w: not Alias.objects.filter(pk=w.alias.pk).exists(),
    "api_token_create": lambda w: ApiToken.objects.filter(organisation=w.org, name="ci").exists(),
    "api_token_revoke": lambda w: _fresh(w.token).revoked_at is not None,
    "membership_set": lambda w: w.org.memberships.filter(user=w.new_user, role="viewer").exists(),
    "membership_remove": lambda w: not Membership.objects.filter(
        pk=w.viewer_membership.pk
    ).exists(),
    "invitation_create": lambda w: Invitation.objects.filter(
        organisation=w.org, email="new@operators.test"
    ).exists(),
    # Revoking deletes the invitation: its link stops working.
    "invitation_revoke": lambda w: not Invitation.objects.filter(pk=w.invitation.pk).exists(),
}


def assert_written(service, world, audit_before: int) -> None:
    assert WRITTEN[service](world), f"{service} returned but its change is not in the database"
    assert AuditEvent.objects.filter(organisation=world.org).count() > audit_before, (
        f"{service} changed state without an audit event"
    )


READS = {
    "domain_get": lambda a, w: mailbox_selectors.domain_get(a, "victim.test"),
    "mailbox_get": lambda a, w: mailbox_selectors.mailbox_get(a, "alice@victim.test"),
    "alias_get": lambda a, w: mailbox_selectors.alias_get(a, "sales@victim.test"),
    "organisation_get": lambda a, w: tenant_selectors.organisation_get(a, w.org.slug),
    "audit_list": lambda a, w: list(tenant_selectors.audit_list(a, w.org)),
    "api_token_list": lambda a, w: list(tenant_selectors.api_token_list(a, w.org)),
}

# What each read must return: the victim organisation's own object, and nothing of another's.
READ_RESULTS = {
    "domain_get": lambda w, r: r == w.domain,
    "mailbox_get": lambda w, r: r == w.mailbox,
    "alias_get": lambda w, r: r == w.alias,
    "organisation_get": lambda w, r: r == w.org,
    "audit_list": lambda w, r: bool(r) and {e.organisation_id for e in r} == {w.org.pk},
    "api_token_list": lambda w, r: w.token in r and {t.organisation_id for t in r} == {w.org.pk},
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
    actor = ACTORS[actor_kind](world)
    audit_before = AuditEvent.objects.filter(organisation=world.org).count()
    WRITES[service](actor, world)
    assert_written(service, world, audit_before)


@pytest.mark.parametrize("service", sorted(TOKEN_MANAGEMENT))
def test_it_keeps_token_management_to_people(world, service):
    with pytest.raises(Forbidden):
        TOKEN_MANAGEMENT[service](ACTORS["write_token"](world), world)
    TOKEN_MANAGEMENT[service](ACTORS["admin"](world), world)


@pytest.mark.parametrize("service", sorted(OWNER_WRITES))
def test_it_keeps_member_management_to_owners(world, service):
    with pytest.raises(Forbidden):
        OWNER_WRITES[service](ACTORS["admin"](world), world)
    audit_before = AuditEvent.objects.filter(organisation=world.org).count()
    OWNER_WRITES[service](Actor(user=world.membership.user), world)
    assert_written(service, world, audit_before)


@pytest.mark.parametrize("actor_kind", READ_ONLY + WRITERS)
@pytest.mark.parametrize("service", sorted(READS))
def test_it_lets_members_read(world, actor_kind, service):
    result = READS[service](ACTORS[actor_kind](world), world)
    assert READ_RESULTS[service](world, result), f"{service} returned {result!r}"


def test_it_lists_only_the_actors_own_organisations_objects(world):
    other = OrganisationFactory()
    MailboxFactory(domain=DomainFactory(organisation=other))
    actor = _member(world.org, "viewer")
    assert {m.domain.organisation_id for m in mailbox_selectors.mailbox_list(actor)} == {
        world.org.pk
    }
    assert set(mailbox_selectors.domain_list(actor)) == {world.domain, world.empty_domain}


def test_it_keeps_the_last_owner(world):
    owner = Actor(user=world.membership.user)
    with pytest.raises(Exception, match="at least one owner"):
        ts.membership_remove(actor=owner, membership=world.membership)
    assert Membership.objects.filter(pk=world.membership.pk).exists()
