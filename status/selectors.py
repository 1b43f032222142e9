"""What of the status an actor may see: staff everything; an organisation's members the checks
about their own domains."""

from django.db.models import QuerySet

from status.models import HousekeepingRun, State, StatusAlert, StatusCheck
from tenants.access import Actor, visible_organisations


def _visible(actor: Actor, queryset: QuerySet) -> QuerySet:
    if actor.is_global:
        return queryset
    return queryset.filter(organisation__in=visible_organisations(actor))


def status_checks(actor: Actor) -> QuerySet[StatusCheck]:
    return _visible(actor, StatusCheck.objects.all())


def status_alerts(actor: Actor) -> QuerySet[StatusAlert]:
    return _visible(actor, StatusAlert.objects.all())


def housekeeping_runs(actor: Actor) -> QuerySet[HousekeepingRun]:
    """The recent housekeeping runs: staff only (they concern the whole install)."""
    return HousekeepingRun.objects.all() if actor.is_global else HousekeepingRun.objects.none()


def status_summary() -> dict:
    """For /health (public, so no names): how many checks are in each state, which kinds of
    check have problems, and when the checks last ran."""
    rows = list(StatusCheck.objects.values_list("group", "state", "checked_at"))
    return {
        "ok": sum(1 for _, s, _ in rows if s == State.OK),
        "problem": sum(1 for _, s, _ in rows if s == State.PROBLEM),
        "unknown": sum(1 for _, s, _ in rows if s == State.UNKNOWN),
        "problem_groups": sorted({g for g, s, _ in rows if s == State.PROBLEM}),
        "checked_at": max((at for _, _, at in rows), default=None),
    }
