"""The shipped default is production-safe; the dev relaxations are loud while they are on."""

import os
import subprocess
import sys

import pytest
from django.test import Client

from tests.factories import UserFactory

PROBE = """
import django
django.setup()
from django.conf import settings
from mailhost.backend.config import NodeConfig, render_static_files
cfg = NodeConfig.from_settings("/srv/mh/probe")
conf = render_static_files(cfg)["dovecot/dovecot.conf"].decode()
policy = getattr(cfg, "ban_policy", None)
print(settings.MAILHOST_STACK_DEV, cfg.dev, "auth_failure_delay = 0" in conf,
      "auth_policy_server_url" in conf, policy is None or policy.exempts("127.0.0.1"))
"""


def test_it_ships_with_the_failed_login_delay_penalty_and_bans_on():
    env = {k: v for k, v in os.environ.items() if k != "MAILHOST_STACK_DEV"}
    env["DJANGO_SETTINGS_MODULE"] = "mailhost.settings"
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False", "False", "True", "False"]


@pytest.mark.django_db
def test_it_warns_in_health_and_on_staff_pages_while_relaxations_are_on(settings):
    settings.MAILHOST_STACK_DEV = True
    warnings = Client().get("/api/v1/health").json()["warnings"]
    assert any("MAILHOST_STACK_DEV is on" in w for w in warnings)
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert b"Not for production" in staff.get("/mail-admin/bans/").content

    settings.MAILHOST_STACK_DEV = False
    assert Client().get("/api/v1/health").json()["warnings"] == []
    assert b"Not for production" not in staff.get("/mail-admin/bans/").content
