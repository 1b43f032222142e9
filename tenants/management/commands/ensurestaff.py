import os
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from mailhost.passwords import generate_password
from tenants.services import user_create_staff


class Command(BaseCommand):
    help = (
        "Create the first staff user if it does not exist; its generated password is written to "
        "--password-file (0600). Used by `make up`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument("--password-file", required=True, type=Path)

    def handle(self, *args, email, password_file, **options):
        if get_user_model().objects.filter(username=email).exists():
            return
        password = generate_password(20)
        password_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        user_create_staff(email=email, password=password)
        self.stdout.write(f"Created staff user {email}; password in {password_file}.")
