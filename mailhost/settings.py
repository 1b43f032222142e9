"""Mailhost settings: one module, every value from the environment (see docker/.env.example)."""

import base64
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

from mailhost.env import (
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
    secret_generated_once,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MAILHOST_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_generated_once(
    "SECRET_KEY", VAR_DIR / "secret_key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "mailhost.apps.MailhostConfig",
    "tenants",
    "mailboxes",
    "identity",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "mailhost.urls"
WSGI_APPLICATION = "mailhost.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """`sqlite:///path` or `postgres://user:pass@host:port/name`."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "timeout": 20},
        }
    if parsed.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL: unsupported scheme {parsed.scheme!r}")


DATABASES = {
    "default": database_from_url(
        env_secret("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'mailhost.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Operators log in with django-allauth: e-mail as login, verified, MFA available, rate-limited.
SITE_ID = 1
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_EMAIL_VERIFICATION = env_str("ACCOUNT_EMAIL_VERIFICATION", "mandatory")
ACCOUNT_ALLOW_SIGNUPS = env_bool("ACCOUNT_ALLOW_SIGNUPS", False)
ACCOUNT_ADAPTER = "tenants.adapters.AccountAdapter"
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
LOGIN_REDIRECT_URL = "/mail-admin/"
LOGIN_URL = "/accounts/login/"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

# Outgoing notification mail (verification, alerts). By default it goes through the bundled
# stack's own SMTP port; tests use Django's locmem backend.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", env_int("MAILHOST_SMTP_PORT", 2525))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mailhost@localhost")

# Celery: Redis as broker; results are not needed (tasks record their outcome in the database).
CELERY_BROKER_URL = env_secret("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
REDIS_URL = env_secret("REDIS_URL") or CELERY_BROKER_URL
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# The mail host and the bundled stack's ports (dev defaults: loopback, high ports).
MAILHOST_HOSTNAME = env_str("MAILHOST_HOSTNAME", "mail.localhost")
MAILHOST_BIND_ADDRESS = env_str("MAILHOST_BIND_ADDRESS", "127.0.0.1")
MAILHOST_PORTS = {
    "smtp": env_int("MAILHOST_SMTP_PORT", 2525),
    "submission": env_int("MAILHOST_SUBMISSION_PORT", 2587),
    "submissions": env_int("MAILHOST_SUBMISSIONS_PORT", 2465),
    "imap": env_int("MAILHOST_IMAP_PORT", 2143),
    "imaps": env_int("MAILHOST_IMAPS_PORT", 2993),
    "managesieve": env_int("MAILHOST_MANAGESIEVE_PORT", 24190),
}
MAILHOST_NODE_STATE_DIR = Path(env_str("MAILHOST_NODE_STATE_DIR", str(VAR_DIR / "node")))
MAILHOST_NODE_NAME = env_str("MAILHOST_NODE_NAME", "local")

# Mailbox password hashing: BLF-CRYPT (bcrypt), verified by Dovecot. See README for why.
MAILHOST_BCRYPT_ROUNDS = env_int("MAILHOST_BCRYPT_ROUNDS", 10)
MAILHOST_GENERATED_PASSWORD_LENGTH = env_int("MAILHOST_GENERATED_PASSWORD_LENGTH", 20)
MAILHOST_DEFAULT_QUOTA_MB = env_int("MAILHOST_DEFAULT_QUOTA_MB", 2048)
MAILHOST_DELETED_RETENTION_DAYS = env_int("MAILHOST_DELETED_RETENTION_DAYS", 30)

# DKIM private keys are encrypted at rest with this key (Fernet: 32 url-safe base64 bytes).
DKIM_ENCRYPTION_KEY = secret_generated_once(
    "DKIM_ENCRYPTION_KEY",
    VAR_DIR / "dkim_encryption_key",
    lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
