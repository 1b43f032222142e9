from django.apps import AppConfig


class MailhostConfig(AppConfig):
    name = "mailhost"
    verbose_name = "Mailhost"

    def ready(self) -> None:
        from django.conf import settings

        from mailhost import checks  # noqa: F401  (registers the system checks)

        if settings.OTEL_ENABLED:  # before Django builds its middleware (mailhost/tracing.py)
            from mailhost.tracing import tracing_setup

            tracing_setup()
