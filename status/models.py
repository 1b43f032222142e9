"""The status page's checks: the latest verdict of each, and the alerts their changes raised."""

from django.db import models

from tenants.models import Organisation


class State(models.TextChoices):
    OK = "ok", "OK"
    PROBLEM = "problem", "Problem"
    UNKNOWN = "unknown", "Unknown"


class StatusCheck(models.Model):
    """One check's latest verdict, with the evidence it rests on.

    `key` names what is checked ("node:default:daemon:dovecot", "dnsbl:192.0.2.25:zen…",
    "domain:example.org:records"); a check about a domain belongs to its organisation, whose
    members see it too. `data` keeps what the next run needs (the disk-use samples)."""

    key = models.CharField(max_length=200, unique=True)
    group = models.CharField(max_length=40, help_text="daemons, queue, disk, tls, dns, dnsbl…")
    title = models.CharField(max_length=200)
    state = models.CharField(max_length=7, choices=State.choices)
    evidence = models.TextField(blank=True)
    link = models.URLField(blank=True, help_text="Where to act (a blocklist's removal page).")
    organisation = models.ForeignKey(Organisation, null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="status_checks")
    data = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField()
    changed_at = models.DateTimeField(help_text="When the state last changed.")

    class Meta:
        ordering = ["group", "key"]

    def __str__(self) -> str:
        return f"{self.key}: {self.state}"


class StatusAlert(models.Model):
    """A check whose state changed: raised once per change, never per run."""

    key = models.CharField(max_length=200)
    title = models.CharField(max_length=200)
    previous = models.CharField(max_length=7, choices=State.choices, blank=True)
    state = models.CharField(max_length=7, choices=State.choices)
    evidence = models.TextField(blank=True)
    organisation = models.ForeignKey(Organisation, null=True, blank=True,
                                     on_delete=models.CASCADE, related_name="status_alerts")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.key}: {self.previous or 'new'} → {self.state}"


class HousekeepingRun(models.Model):
    """One run of a housekeeping job (status.housekeeping): what it removed, or why it failed."""

    job = models.CharField(max_length=100, help_text="reports, node-logs:<node>…")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    ok = models.BooleanField()
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["job", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.job} at {self.started_at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'failed'}"
