"""Seeding many mailboxes fast: bulk inserts with one precomputed hash and one node change.

Not 100,000 service calls (that would benchmark bcrypt and the audit log, not the reconciler):
domains, their DKIM keys and mailboxes go in with `bulk_create`, all at one new desired revision,
and the caller then applies them with a full reconcile (B4). Every domain gets `PER_DOMAIN`
mailboxes named user000…, so growing from 1,000 to 100,000 adds domains of the same shape.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from django.utils import timezone

PASSWORD = "BenchSeedPassword0001"  # every seeded mailbox's password (a generated one's form)
PER_DOMAIN = 100
ORG_SLUG = "bench"


@dataclass
class Tenant:
    organisation: object
    user: object
    token: str  # raw API token (read-write)
    node: object
    password_hash: str


def domain_name(index: int) -> str:
    return f"b{index:04d}.bench.test"


def seeded_address(index: int) -> str:
    """The index-th seeded mailbox (0-based), spread across all domains of that size."""
    domain, local = divmod(index, PER_DOMAIN)
    return f"user{local:03d}@{domain_name(domain)}"


def setup_tenant() -> Tenant:
    from mailhost.passwords import hash_password
    from nodes.changes import node_default
    from tenants.access import SYSTEM
    from tenants.models import Membership, Organisation
    from tenants.services import api_token_create

    organisation = Organisation.objects.create(slug=ORG_SLUG, name="Bench Ltd")
    user = get_user_model().objects.create_user(
        username="operator@bench.test", email="operator@bench.test", password=None
    )
    Membership.objects.create(user=user, organisation=organisation, role="owner")
    _, raw = api_token_create(actor=SYSTEM, organisation=organisation, name="bench")
    # Stored as a generated password is ({SSHA512}), like B1's.
    return Tenant(organisation, user, raw, node_default(), hash_password(PASSWORD, generated=True))


def _dkim_material() -> tuple[str, str]:
    """One RSA key shared by every seeded domain: generating 1,000 would take minutes."""
    from identity.dkim import generate_rsa_key
    from mailhost.crypto import encrypt

    private_pem, public = generate_rsa_key()
    return encrypt(private_pem), public


@transaction.atomic
def grow(tenant: Tenant, *, domains: int) -> int:
    """Add domains (each with an active DKIM key and PER_DOMAIN mailboxes) up to `domains`;
    one desired-revision bump for all of it. Returns the number of seeded mailboxes."""
    from identity.models import DkimKey, DkimKeyState
    from mailboxes.models import Domain, Mailbox, VerificationMethod
    from nodes.models import MailNode

    existing = Domain.objects.filter(name__endswith=".bench.test").count()
    MailNode.objects.filter(pk=tenant.node.pk).update(desired_revision=F("desired_revision") + 1)
    revision = MailNode.objects.values_list("desired_revision", flat=True).get(pk=tenant.node.pk)
    now = timezone.now()
    # Verified as special-use names (.test): since ownership verification, an unverified
    # domain renders nothing onto the node.
    new = Domain.objects.bulk_create(
        [
            Domain(organisation=tenant.organisation, node=tenant.node, name=domain_name(i),
                   revision=revision, verified_at=now,
                   verification_method=VerificationMethod.SPECIAL_USE)
            for i in range(existing, domains)
        ],
        batch_size=1000,
    )
    encrypted, public = _dkim_material()
    DkimKey.objects.bulk_create(
        [
            DkimKey(domain=domain, selector="mhbench", private_key_encrypted=encrypted,
                    public_key=public, state=DkimKeyState.ACTIVE, activated_at=now)
            for domain in new
        ],
        batch_size=1000,
    )
    for start in range(0, len(new), 50):  # 5,000 mailboxes per round trip
        Mailbox.objects.bulk_create(
            [
                Mailbox(domain=domain, local_part=f"user{n:03d}", quota_mb=domain.default_quota_mb,
                        password_hash=tenant.password_hash, revision=revision)
                for domain in new[start : start + 50]
                for n in range(PER_DOMAIN)
            ],
            batch_size=5000,
        )
    return domains * PER_DOMAIN


def analyze() -> None:
    """Table statistics, as autovacuum would gather them a minute after a bulk load: without
    them PostgreSQL plans the list queries for empty tables (seconds instead of ms)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
