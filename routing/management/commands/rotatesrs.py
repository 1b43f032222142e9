from django.core.management.base import BaseCommand

from routing.srs import arc_key_rotate, forwarding_ensure, srs_prune, srs_rotate
from tenants.commands import command_actor, domain_errors_as_command_errors


class Command(BaseCommand):
    help = (
        "Rotate the SRS secret (the old one still verifies bounces for MAILHOST_SRS_GRACE_DAYS), "
        "or --ensure: make the SRS secret and ARC key if missing and drop secrets past their "
        "grace period; --arc: rotate the ARC key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ensure", action="store_true", help="only make what is missing")
        parser.add_argument("--arc", action="store_true", help="rotate the ARC key instead")

    def handle(self, *args, ensure, arc, **options):
        actor = command_actor("rotatesrs")
        with domain_errors_as_command_errors():
            if ensure:
                made = forwarding_ensure(actor=actor)
                pruned = srs_prune(actor=actor)
                self.stdout.write(f"Made: {', '.join(made) or 'nothing'}; "
                                  f"replaced secrets removed: {pruned}.")
            elif arc:
                key = arc_key_rotate(actor=actor)
                self.stdout.write(f'New ARC key; publish: {key.dns_name}. TXT '
                                  f'"v=DKIM1; k=rsa; p={key.public_key}"')
            else:
                srs_rotate(actor=actor)
                self.stdout.write("New SRS secret signs; the replaced one verifies bounces "
                                  "until its grace period ends.")
