"""Which domains a node holds because they are moving to or from it (DomainMove).

A moving domain's mailboxes are in the lookup stores of both nodes while both need them: the
target's from the first copy on (so `doveadm sync -u` finds the user there), the source's
until the final copy is done (its doveadm server serves the user from it). Only the domain's
node (`Domain.node`) takes its mail; the other routes it there over its peer transport. The
exception is the switch: the source delivers the domain's mail itself (no route to the target)
until the target has applied the switch, so for a moment both deliver and nothing bounces or
loops; the final copy merges the two.
"""

from django.db.models import Q

from nodes.models import DomainMove, MailNode

S = DomainMove.Step
# Steps (the failed step for a failed move) at which each side holds the domain.
TARGET_HOLDS = (S.COPYING, S.SWITCHING, S.FINAL_SYNC, S.RETIRING)
SOURCE_HOLDS = (S.SWITCHING, S.FINAL_SYNC)


def _at(steps) -> Q:
    return Q(step__in=steps) | Q(step=S.FAILED, failed_step__in=steps)


def held_domain_ids(node: MailNode | int) -> list[int]:
    """The domains moving to or from `node` whose mail state it holds beside its own."""
    node_id = node if isinstance(node, int) else node.pk
    return list(DomainMove.objects.filter(
        (Q(target_id=node_id) & _at(TARGET_HOLDS)) | (Q(source_id=node_id) & _at(SOURCE_HOLDS))
    ).values_list("domain_id", flat=True))


def unrouted_domain_ids(node: MailNode | int) -> list[int]:
    """Domains switching away from `node`: it keeps delivering them itself (no peer route to
    the target) until the target has taken them over."""
    node_id = node if isinstance(node, int) else node.pk
    return list(DomainMove.objects.filter(Q(source_id=node_id) & _at((S.SWITCHING,)))
                .values_list("domain_id", flat=True))


def open_move(domain_id: int) -> DomainMove | None:
    return DomainMove.objects.filter(domain_id=domain_id).exclude(step=S.DONE).first()
