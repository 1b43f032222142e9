from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"
    verbose_name = "DMARC and TLS reports"

    def ready(self) -> None:
        from identity import dmarc_evidence
        from reports.figures import dmarc_advice

        # The DMARC stage advice (identity, below this app) reads the reports through this.
        dmarc_evidence.register(dmarc_advice)
