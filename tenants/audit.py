from tenants.access import Actor
from tenants.models import AuditEvent


def audit_record(**fields) -> AuditEvent:
    """Write one audit event (the arguments of `audit_event`). Call inside the service's
    transaction so both commit or neither."""
    event = audit_event(**fields)
    event.save(force_insert=True)
    return event


def audit_event(
    *,
    actor: Actor,
    organisation_id: int | None,
    action: str,
    target_type: str,
    target: str,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """An unsaved audit event, for a service that writes many at once (bulk_create)."""
    user = actor.user if actor.user is not None and actor.user.is_authenticated else None
    return AuditEvent(
        organisation_id=organisation_id,
        actor_user=user,
        actor_token=actor.token,
        actor_label=actor.label[:200],
        ip=actor.ip,
        action=action,
        target_type=target_type,
        target=target[:300],
        before=before,
        after=after,
    )
