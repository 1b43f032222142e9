"""Membership changes reach the mail node: who an organisation's first admin is decides where
its domains' postmaster@ and abuse@ go while it has chosen no target (see
mailboxes.snapshot.first_admin_addresses). Only the role rows are re-rendered (a `roles`
change per domain), never the domains' mailboxes."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from mailboxes.models import Domain
from nodes.changes import record_change
from nodes.models import NodeChange
from tenants.models import Membership


@receiver(post_save, sender=Membership, dispatch_uid="mailboxes.membership_saved")
@receiver(post_delete, sender=Membership, dispatch_uid="mailboxes.membership_deleted")
def membership_changed(sender, instance: Membership, **kwargs) -> None:
    automatic = Domain.objects.filter(organisation_id=instance.organisation_id, role_target="")
    for domain_id, node_id in automatic.values_list("pk", "node_id"):
        record_change(node_id=node_id, kind=NodeChange.Kind.ROLES, object_id=domain_id)
