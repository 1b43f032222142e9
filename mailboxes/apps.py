from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        # The system checks; membership changes re-route role addresses.
        from mailboxes import checks, signals  # noqa: F401
