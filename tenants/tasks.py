from celery import shared_task

from tenants.services import invitations_expire


@shared_task(name="tenants.expire_invitations")
def expire_invitations() -> int:
    """Delete invitations that expired unaccepted; returns how many."""
    return invitations_expire()
