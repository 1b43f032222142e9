"""`manage.py stack start|stop|status|reload`: the default node's mail stack, as daemons.

`start` returns once every listener answers; the daemons keep running after it exits, and a
later `stop` (another process) stops them. Both are idempotent.
"""

from django.core.management.base import BaseCommand, CommandError

from mailhost.backend.config import NodeConfig
from mailhost.backend.stack import Stack, StackError
from nodes.changes import node_default


class Command(BaseCommand):
    help = "Start, stop, reload or show the bundled Postfix/Dovecot/OpenDKIM stack of this node."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status", "reload"])

    def handle(self, *args, action: str, **options):
        node = node_default()
        stack = Stack(NodeConfig.from_settings(node.state_dir))
        try:
            if action == "start":
                stack.start()
            elif action == "stop":
                stack.stop()
            elif action == "reload":
                for daemon, pid in stack.status().items():
                    if pid:
                        stack.reload(daemon)
        except StackError as exc:
            raise CommandError(str(exc)) from exc
        self._report(stack)
        if action == "status" and not stack.is_running():
            raise CommandError("The mail stack is not (fully) running.")

    def _report(self, stack: Stack) -> None:
        for daemon, pid in stack.status().items():
            state = f"running (pid {pid})" if pid else "stopped"
            self.stdout.write(f"{daemon:<9} {state}")
        self.stdout.write(f"state dir {stack.cfg.state_dir}")
        for problem in stack.dkim_problems():
            self.stderr.write(f"DKIM: {problem}")
