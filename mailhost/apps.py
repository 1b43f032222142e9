from django.apps import AppConfig


class MailhostConfig(AppConfig):
    name = "mailhost"
    verbose_name = "Mailhost"

    def ready(self) -> None:
        from mailhost import checks  # noqa: F401  (registers the system checks)
