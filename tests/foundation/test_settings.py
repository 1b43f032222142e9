import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from mailhost.env import env_bool, env_int, env_secret


def test_it_parses_booleans_strictly(monkeypatch):
    monkeypatch.setenv("FLAG", "true")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "yes")
    with pytest.raises(ImproperlyConfigured, match="'true' or 'false'"):
        env_bool("FLAG", False)


def test_it_refuses_a_non_integer(monkeypatch):
    monkeypatch.setenv("PORT", "25x")
    with pytest.raises(ImproperlyConfigured, match="integer"):
        env_int("PORT", 1)


def test_it_reads_secrets_from_a_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("TOKEN", raising=False)
    monkeypatch.setenv("TOKEN_FILE", str(secret))
    assert env_secret("TOKEN") == "s3cret"


def _check_ids() -> set[str]:
    return {message.id for message in run_checks()}


def test_it_passes_its_own_checks_by_default():
    assert not {i for i in _check_ids() if i.startswith("mailhost.E")}


@pytest.mark.parametrize(
    ("overrides", "check_id"),
    [
        ({"MAILHOST_HOSTNAME": "not a host"}, "mailhost.E001"),
        ({"MAILHOST_PORTS": {"smtp": 0, "imap": 2143}}, "mailhost.E002"),
        ({"MAILHOST_PORTS": {"smtp": 2525, "imap": 2525}}, "mailhost.E003"),
        ({"MAILHOST_NODE_STATE_DIR": "/" + "x" * 80}, "mailhost.E004"),
        ({"DKIM_ENCRYPTION_KEY": "short"}, "mailhost.E005"),
        ({"MAILHOST_BCRYPT_ROUNDS": 30}, "mailhost.E006"),
        ({"MAILHOST_GENERATED_PASSWORD_LENGTH": 8}, "mailhost.E008"),
        ({"MAILHOST_GENERATED_PASSWORD_LENGTH": 16}, "mailhost.W002"),
    ],
)
def test_it_reports_misconfiguration_with_a_stable_id(overrides, check_id):
    with override_settings(**overrides):
        assert check_id in _check_ids()
