"""`manage.py movedomain DOMAIN NODE`: move a domain and its mail to another mail node;
`--status DOMAIN` shows its move, `--resume DOMAIN` continues a failed or stalled one
(docs/operations.md, "Moving a domain")."""

import time

from django.core.management.base import BaseCommand, CommandError

from mailboxes.models import Domain
from mailboxes.services import moves
from mailhost.errors import DomainError
from nodes.models import DomainMove
from tenants.access import SYSTEM


def describe(move: DomainMove) -> str:
    line = (f"{move.domain_name}: {move.source.name} → {move.target.name}, step {move.step}"
            + (f" (at {move.failed_step})" if move.failed_step else "")
            + f", mailboxes {move.mailboxes_done}/{move.mailboxes_total}")
    if move.last_error:
        line += f", attempt {move.attempts}, last error: {move.last_error}"
    return line


class Command(BaseCommand):
    help = "Move a domain and its mail to another mail node, or show/resume its move."

    def add_arguments(self, parser):
        parser.add_argument("domain")
        parser.add_argument("node", nargs="?", help="the node to move it to")
        parser.add_argument("--status", action="store_true", help="show the domain's last move")
        parser.add_argument("--resume", action="store_true",
                            help="continue the domain's open move (a failed one included)")
        parser.add_argument("--wait", action="store_true",
                            help="drive the move here until it is done or failed")

    def handle(self, *args, domain, node, status, resume, wait, **options):
        if status:
            move = DomainMove.objects.filter(domain_name=domain.lower()).first()
            if move is None:
                raise CommandError(f"{domain} has never moved.")
            self.stdout.write(describe(move))
            return
        if resume:
            move = DomainMove.objects.filter(domain_name=domain.lower()).exclude(
                step=DomainMove.Step.DONE).first()
            if move is None:
                raise CommandError(f"{domain} has no open move.")
            move = moves.move_resume(move)
        else:
            if not node:
                raise CommandError("Name the node to move the domain to.")
            found = Domain.objects.filter(name=domain.lower(), verified_at__isnull=False).first()
            found = found or Domain.objects.filter(name=domain.lower()).first()
            if found is None:
                raise CommandError(f"There is no domain {domain!r}.")
            try:
                move = moves.move_start(actor=SYSTEM, domain=found, node=node)
            except DomainError as exc:
                raise CommandError(str(exc)) from exc
        if wait:
            while True:
                driven = moves.move_drive(move.pk)
                if driven is None:
                    time.sleep(1)  # another driver has it
                move = driven or DomainMove.objects.get(pk=move.pk)
                if move.step in (DomainMove.Step.DONE, DomainMove.Step.FAILED):
                    break
        elif resume:
            moves.schedule_move(move.pk)
        self.stdout.write(describe(move))
        if move.step == DomainMove.Step.FAILED:
            raise CommandError("The move failed; fix the cause and run with --resume.")
