"""Plumbing for operator management commands: run a service, report errors as CommandError."""

from contextlib import contextmanager

from django.core.management.base import CommandError

from mailhost.errors import DomainError
from tenants.access import Actor


def command_actor(name: str) -> Actor:
    """The box's operator, running `manage.py <name>`: acts across organisations."""
    return Actor(system=f"manage.py {name}")


@contextmanager
def domain_errors_as_command_errors():
    try:
        yield
    except DomainError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise CommandError(f"{exc.detail}{field}") from None
