from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Outbound delivery"

    def ready(self):
        from delivery import checks  # noqa: F401  (the system checks)
