"""Mailhost settings: one module, every value from the environment (see docker/.env.example)."""

import base64
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse, urlsplit

from celery.schedules import crontab
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
    "nodes",
    "mailboxes",
    "identity",
    "bans",
    "delivery",
    "reports",
    "routing",
    "status",
    "webmail",
    "backups",
    "mailcrypt",
]

MIDDLEWARE = [
    "mailhost.request_id.RequestIdMiddleware",  # first: every later log line carries the id
    "django.middleware.security.SecurityMiddleware",
    # mta-sts./autoconfig./autodiscover.<hosted domain>: before host validation and static files.
    "mailhost.hosts.HostRoutingMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "bans.middleware.BanGateMiddleware",  # login pages refuse a banned address
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
                "mailhost.health.template_warnings",  # staff see dev-mode warnings
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
            # IMMEDIATE: a transaction takes the write lock when it begins, so it waits its
            # turn (up to `timeout` s) instead of failing at once with "database is locked"
            # when it reads, then tries to write after another connection (the worker, a
            # second web process) has committed: a deferred lock upgrade never waits in WAL.
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL;",
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
            },
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
    "bans.auth.BanBackend",  # first: a banned address cannot authenticate at all
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
# stack's loopback re-injection port (the public port refuses relay); tests use locmem.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", env_int("MAILHOST_INTERNAL_SMTP_PORT", 2526))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mailhost@localhost")

# Celery: Redis as broker; results are not needed (tasks record their outcome in the database).
CELERY_BROKER_URL = env_secret("CELERY_BROKER_URL") or "redis://127.0.0.1:6379/0"
REDIS_URL = env_secret("REDIS_URL") or CELERY_BROKER_URL
# Django's cache (allauth's login rate limits, used-TOTP-code marks) is shared by every web
# worker through Redis: a per-process cache would multiply the allowed attempts by workers.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "mailhost",
    },
    # Per process: which service host names (autoconfig.<d>, …) are hosted domains'. A round
    # trip to Redis would cost as much as the indexed lookup it saves.
    "hosts": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "mailhost-hosts",
        "OPTIONS": {"MAX_ENTRIES": 5000},
    },
}
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
# Test harness only: "127.0.0.1:PORT" of the tests' fake internet MX, which then receives all
# mail for *.example (mailhost/backend/config.py). Empty (the default) everywhere else.
MAILHOST_TEST_INTERNET_MX = env_str("MAILHOST_TEST_INTERNET_MX", "")
MAILHOST_PORTS = {
    "smtp": env_int("MAILHOST_SMTP_PORT", 2525),
    "submission": env_int("MAILHOST_SUBMISSION_PORT", 2587),
    "submissions": env_int("MAILHOST_SUBMISSIONS_PORT", 2465),
    "imap": env_int("MAILHOST_IMAP_PORT", 2143),
    "imaps": env_int("MAILHOST_IMAPS_PORT", 2993),
    "managesieve": env_int("MAILHOST_MANAGESIEVE_PORT", 24190),
    # Loopback-only re-injection for Sieve redirects, vacation replies and the portal's own
    # notifications; it trusts 127.0.0.1 only and is never exposed.
    "internal": env_int("MAILHOST_INTERNAL_SMTP_PORT", 2526),
    # Loopback-only: the ban policy server Dovecot asks on every login.
    "authpolicy": env_int("MAILHOST_AUTHPOLICY_PORT", 2527),
    # Loopback-only, UDP and TCP: the node's own resolver (unbound) that Rspamd asks.
    "resolver": env_int("MAILHOST_RESOLVER_PORT", 2553),
    # The edge (nginx, mailhost/backend/edge.py): HTTP (ACME challenges, redirect) and HTTPS
    # (portal, API, hosted domains' mta-sts./autoconfig./autodiscover.). 80/443 in production.
    "http": env_int("MAILHOST_HTTP_PORT", 2080),
    "https": env_int("MAILHOST_HTTPS_PORT", 2443),
    # Loopback-only: Radicale (CalDAV/CardDAV), which the edge serves at /dav/.
    "dav": env_int("MAILHOST_DAV_PORT", 5232),
    # Loopback-only: Dovecot's counters (OpenMetrics) from its stats process.
    "stats": env_int("MAILHOST_DOVECOT_STATS_PORT", 2531),
    # Dovecot's doveadm server on the bind address: another node pulls a moving domain's mail
    # from it (nodes/moves.py), with MAILHOST_DOVEADM_PASSWORD.
    "doveadm": env_int("MAILHOST_DOVEADM_PORT", 2532),
}
# The nodes' shared doveadm password (generated once into the var dir unless set; every node of
# an install must have the same one: set it, or copy the file, on each node's host).
# Where that server listens; empty: MAILHOST_BIND_ADDRESS. A node alone needs no outside
# access (docker/compose.yml keeps it on 127.0.0.1); several nodes set an address the other
# nodes reach at their `nodeaddress` host.
MAILHOST_DOVEADM_BIND_ADDRESS = env_str("MAILHOST_DOVEADM_BIND_ADDRESS", "")
MAILHOST_DOVEADM_PASSWORD = secret_generated_once(
    "MAILHOST_DOVEADM_PASSWORD", VAR_DIR / "doveadm_password", lambda: secrets.token_urlsafe(32)
)
# Certificates (mailhost/backend/certificates.py; README "Certificates"). ACME is off while the
# directory URL is empty (operator-provided certificates); Let's Encrypt's is
# https://acme-v02.api.letsencrypt.org/directory. MAILHOST_ACME_CA_BUNDLE: a CA file to trust
# for the ACME server's own HTTPS (a private CA; the tests' pebble).
MAILHOST_ACME_DIRECTORY_URL = env_str("MAILHOST_ACME_DIRECTORY_URL", "")
MAILHOST_ACME_EMAIL = env_str("MAILHOST_ACME_EMAIL", "")
MAILHOST_ACME_CA_BUNDLE = env_str("MAILHOST_ACME_CA_BUNDLE", "")
MAILHOST_ACME_RENEW_BEFORE_DAYS = env_int("MAILHOST_ACME_RENEW_BEFORE_DAYS", 30)
MAILHOST_ACME_ORDERS_PER_RUN = env_int("MAILHOST_ACME_ORDERS_PER_RUN", 10)
MAILHOST_CERT_ALERT_DAYS = env_int("MAILHOST_CERT_ALERT_DAYS", 14)  # staff alert when renewal fails
MAILHOST_CERT_WATCH_SECONDS = env_int("MAILHOST_CERT_WATCH_SECONDS", 30)
MAILHOST_ACME_RUN_SECONDS = env_int("MAILHOST_ACME_RUN_SECONDS", 3600)  # how often nodes renew
# Where the edge sends /webmail/ (host:port; empty: not served, 404) and /dav/ (empty: the
# node's own Radicale on MAILHOST_DAV_PORT).
MAILHOST_EDGE_WEBMAIL_UPSTREAM = env_str("MAILHOST_EDGE_WEBMAIL_UPSTREAM", "")
MAILHOST_EDGE_DAV_UPSTREAM = env_str("MAILHOST_EDGE_DAV_UPSTREAM", "")
# Webmail (Roundcube on the node's php-fpm) at /webmail/ on the edge, with SSO from /mailbox/.
MAILHOST_WEBMAIL = env_bool("MAILHOST_WEBMAIL", True)
# The ports mail clients are told to use (SRV records, autoconfig, autodiscover, the Apple
# profile, /mailbox/setup/; see mailhost/endpoints.py). 0 (unset): the port the node listens on
# above, or for https the port of MAILHOST_PORTAL_URL. Set one only when a NAT or proxy in
# front maps a different public port onto the node's.
MAILHOST_PUBLIC_PORTS = {
    "imaps": env_int("MAILHOST_PUBLIC_IMAPS_PORT", 0),
    "imap": env_int("MAILHOST_PUBLIC_IMAP_PORT", 0),
    "submissions": env_int("MAILHOST_PUBLIC_SUBMISSIONS_PORT", 0),
    "submission": env_int("MAILHOST_PUBLIC_SUBMISSION_PORT", 0),
    "https": env_int("MAILHOST_PUBLIC_HTTPS_PORT", 0),
}
# Dev/test relaxations (no failed-login delay or penalty; 127.0.0.1 never banned). Never in
# production: `make up` and /api/v1/health warn while they are on.
MAILHOST_STACK_DEV = env_bool("MAILHOST_STACK_DEV", False)
# Login protection (README "Login protection (bans)"): an address with MAILHOST_BAN_FAILURES
# failed logins within MAILHOST_BAN_WINDOW_SECONDS on any of IMAP, POP3, SMTP AUTH,
# ManageSieve, /mailbox/ or the operator login is refused everywhere for MAILHOST_BAN_SECONDS.
MAILHOST_BAN_FAILURES = env_int("MAILHOST_BAN_FAILURES", 10)
MAILHOST_BAN_WINDOW_SECONDS = env_int("MAILHOST_BAN_WINDOW_SECONDS", 600)
MAILHOST_BAN_SECONDS = env_int("MAILHOST_BAN_SECONDS", 1800)
# An account with this many failures in the window (from any addresses) is throttled: each
# login attempt for it waits MAILHOST_BAN_ACCOUNT_DELAY_SECONDS first; never refused.
MAILHOST_BAN_ACCOUNT_FAILURES = env_int("MAILHOST_BAN_ACCOUNT_FAILURES", 30)
MAILHOST_BAN_ACCOUNT_DELAY_SECONDS = env_int("MAILHOST_BAN_ACCOUNT_DELAY_SECONDS", 2)
# Networks never counted nor banned (an office's NAT, a monitoring host), comma-separated CIDR.
MAILHOST_BAN_EXEMPT_NETWORKS = env_list("MAILHOST_BAN_EXEMPT_NETWORKS", [])
MAILHOST_MESSAGE_SIZE_LIMIT = env_int("MAILHOST_MESSAGE_SIZE_LIMIT", 50 * 1024 * 1024)
MAILHOST_NODE_STATE_DIR = Path(env_str("MAILHOST_NODE_STATE_DIR", str(VAR_DIR / "node")))
MAILHOST_NODE_NAME = env_str("MAILHOST_NODE_NAME", "local")

# Mailbox password hashing, verified by Dovecot (see mailhost/passwords.py for why): chosen
# passwords BLF-CRYPT (bcrypt) at this cost; generated ones (~119 bits at the default length,
# unguessable at any speed) SSHA512.
MAILHOST_BCRYPT_ROUNDS = env_int("MAILHOST_BCRYPT_ROUNDS", 10)
MAILHOST_GENERATED_PASSWORD_LENGTH = env_int("MAILHOST_GENERATED_PASSWORD_LENGTH", 20)
MAILHOST_DEFAULT_QUOTA_MB = env_int("MAILHOST_DEFAULT_QUOTA_MB", 2048)
MAILHOST_DELETED_RETENTION_DAYS = env_int("MAILHOST_DELETED_RETENTION_DAYS", 30)
# Every hosted domain's postmaster@ and abuse@ reach a mailbox its organisation chooses, by
# default its first admin's if hosted here; failing both, this install-wide mailbox (README
# "Role addresses"). Empty: nowhere (system check mailboxes.W001).
MAILHOST_OPERATOR_MAILBOX = env_str("MAILHOST_OPERATOR_MAILBOX", "").strip().lower()

# DKIM private keys are encrypted at rest with this key (Fernet: 32 url-safe base64 bytes).
DKIM_ENCRYPTION_KEY = secret_generated_once(
    "DKIM_ENCRYPTION_KEY",
    VAR_DIR / "dkim_encryption_key",
    lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
)

# Everything goes to stderr with the request id: a container's log in production; under
# `make up` gunicorn captures it into var/log/web.log (scripts/web.sh --capture-output).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "mailhost.request_id.RequestIdFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "line",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Periodic work (Celery beat). The full reconcile repairs drift and anything an event missed.
MAILHOST_FULL_RECONCILE_SECONDS = env_int("MAILHOST_FULL_RECONCILE_SECONDS", 900)
CELERY_BEAT_SCHEDULE = {
    "reconcile-all-full": {
        "task": "mailboxes.reconcile_all_full",
        "schedule": MAILHOST_FULL_RECONCILE_SECONDS,
    },
    "purge-deleted-mailboxes": {"task": "mailboxes.purge_deleted_mailboxes", "schedule": 3600},
    # Domain moves between nodes whose driver is gone (a crash) continue from their step.
    "resume-domain-moves": {"task": "mailboxes.resume_moves", "schedule": 60},
    "collect-usage": {
        "task": "mailboxes.collect_usage_all",
        "schedule": env_int("MAILHOST_USAGE_COLLECT_SECONDS", 900),
    },
    "expire-invitations": {"task": "tenants.expire_invitations", "schedule": 3600},
    # Delivery events from each node's event agent (delivery/tasks.py): the lag between a
    # delivery and its status in the API.
    "delivery-collect-events": {
        "task": "delivery.collect_events",
        "schedule": env_int("DELIVERY_EVENTS_COLLECT_SECONDS", 1),
    },
    # Delivery records older than MAILHOST_DELIVERY_RETENTION_DAYS.
    "delivery-purge-records": {"task": "delivery.purge_records", "schedule": 3600},
    # Webhook attempts that are due (retries; and any whose queued task was lost).
    "delivery-webhooks-due": {"task": "delivery.webhooks_due", "schedule": 30},
    "renew-certificates": {
        "task": "nodes.renew_all_certificates", "schedule": MAILHOST_ACME_RUN_SECONDS,
    },
}

# How long the portal keeps sent messages, their timelines and webhook deliveries (days; the
# node keeps its events only until the portal has collected them).
MAILHOST_DELIVERY_RETENTION_DAYS = env_int("MAILHOST_DELIVERY_RETENTION_DAYS", 30)

# Webhooks (delivery/services/webhooks.py): public addresses only unless staff allow a network
# (CIDR list; plain http only there); the first retry's delay, doubling; attempts before a
# delivery is dead (kept, replayable); one attempt's time limit.
MAILHOST_WEBHOOK_ALLOWED_NETWORKS = env_list("MAILHOST_WEBHOOK_ALLOWED_NETWORKS", [])
MAILHOST_WEBHOOK_RETRY_SECONDS = env_int("MAILHOST_WEBHOOK_RETRY_SECONDS", 30)
MAILHOST_WEBHOOK_MAX_ATTEMPTS = env_int("MAILHOST_WEBHOOK_MAX_ATTEMPTS", 8)
MAILHOST_WEBHOOK_TIMEOUT_SECONDS = env_int("MAILHOST_WEBHOOK_TIMEOUT_SECONDS", 10)

# Relays (routing/): an organisation's or domain's smarthost, and the install-wide default one
# (Postfix's relayhost; empty: direct delivery). Relay hosts must resolve to public addresses
# unless staff allow a network (CIDR list). See docker/.env.example.
MAILHOST_RELAY_ALLOWED_NETWORKS = env_list("MAILHOST_RELAY_ALLOWED_NETWORKS", [])
MAILHOST_RELAY_DEFAULT_HOST = env_str("MAILHOST_RELAY_DEFAULT_HOST", "").lower()
MAILHOST_RELAY_DEFAULT_PORT = env_int("MAILHOST_RELAY_DEFAULT_PORT", 587)
MAILHOST_RELAY_DEFAULT_TLS = env_str("MAILHOST_RELAY_DEFAULT_TLS", "required")
MAILHOST_RELAY_DEFAULT_USERNAME = env_str("MAILHOST_RELAY_DEFAULT_USERNAME", "")
MAILHOST_RELAY_DEFAULT_PASSWORD = env_secret("MAILHOST_RELAY_DEFAULT_PASSWORD") or ""
MAILHOST_RELAY_DEFAULT_SPF_INCLUDE = env_str("MAILHOST_RELAY_DEFAULT_SPF_INCLUDE", "").lower()
# The outbound queue: how long Postfix keeps trying before the sender gets a DSN (seconds), and
# when the status checks alert (deferred messages per node or organisation; hours waited).
SMTP_OUTBOUND_TTL_SECS = env_int("SMTP_OUTBOUND_TTL_SECS", 5 * 24 * 3600)
MAILHOST_QUEUE_ALERT_DEFERRED = env_int("MAILHOST_QUEUE_ALERT_DEFERRED", 100)
MAILHOST_QUEUE_ALERT_AGE_HOURS = env_int("MAILHOST_QUEUE_ALERT_AGE_HOURS", 12)

# DNS posture (identity/): the records each domain should publish, their live verification,
# DKIM rotation, DMARC/BIMI/MTA-STS/TLS-RPT. See docker/.env.example for each variable.
MAILHOST_DNS_RESOLVERS = env_list("MAILHOST_DNS_RESOLVERS", [])  # "ip" or "ip@port"; [] = system
MAILHOST_DNS_TIMEOUT_MS = env_int("MAILHOST_DNS_TIMEOUT_MS", 2000)  # one attempt at one server
MAILHOST_DNS_LIFETIME_MS = env_int("MAILHOST_DNS_LIFETIME_MS", 5000)  # one query, all retries
MAILHOST_DNS_TTL = env_int("MAILHOST_DNS_TTL", 3600)  # TTL of generated and published records
MAILHOST_DNS_CHECK_INTERVAL_MINUTES = env_int("MAILHOST_DNS_CHECK_INTERVAL_MINUTES", 360)
# RFC 2136 publishing goes to public addresses only, unless staff allow a network (CIDR list),
# and one time limit bounds a whole publish (resolve, connect, query, update).
MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS = env_list("MAILHOST_DNS_PUBLISH_ALLOWED_NETWORKS", [])
MAILHOST_DNS_PUBLISH_TIMEOUT_MS = env_int("MAILHOST_DNS_PUBLISH_TIMEOUT_MS", 10000)
MAILHOST_PUBLIC_IPV4 = env_list("MAILHOST_PUBLIC_IPV4", [])  # the mail host's sending addresses
MAILHOST_PUBLIC_IPV6 = env_list("MAILHOST_PUBLIC_IPV6", [])
# A mail host named under .localhost (RFC 6761: never public, never given a certificate) is a
# development install: its portal is plain HTTP on the port `make up` serves it on, and that is
# the URL (and the autodiscover port, mailhost/endpoints.py) it advertises. Else HTTPS.
MAILHOST_WEB_PORT = env_int("MAILHOST_WEB_PORT", 8000)
MAILHOST_PORTAL_URL = env_str(
    "MAILHOST_PORTAL_URL",
    f"http://{MAILHOST_HOSTNAME}:{MAILHOST_WEB_PORT}"
    if f".{MAILHOST_HOSTNAME.lower().rstrip('.')}".endswith(".localhost")
    else f"https://{MAILHOST_HOSTNAME}",
)
# The portal answers for the mail host (SRV and CNAME target) and the portal URL's host (BIMI
# logos) whatever ALLOWED_HOSTS lists; hosted domains' mta-sts./autoconfig./autodiscover. hosts
# are checked against the database per request instead (mailhost/hosts.py), never listed here.
_OWN_NAMES = (MAILHOST_HOSTNAME.lower().rstrip("."), urlparse(MAILHOST_PORTAL_URL).hostname)
ALLOWED_HOSTS = list(dict.fromkeys([*ALLOWED_HOSTS, *(name for name in _OWN_NAMES if name)]))
# Seconds a web process remembers whether a service host name is a hosted domain's.
MAILHOST_HOSTED_DOMAIN_CACHE_SECONDS = env_int("MAILHOST_HOSTED_DOMAIN_CACHE_SECONDS", 30)
MAILHOST_DKIM_ROTATION_DAYS = env_int("MAILHOST_DKIM_ROTATION_DAYS", 180)  # 0: never automatic
MAILHOST_DKIM_SWITCH_DELAY_MINUTES = env_int("MAILHOST_DKIM_SWITCH_DELAY_MINUTES", 60)
MAILHOST_DKIM_GRACE_DAYS = env_int("MAILHOST_DKIM_GRACE_DAYS", 7)
# Forwarding (README "Outbound", "Forwarding: SRS and ARC"): the domain of SRS return paths
# and the ARC seal's d= (empty: the mail host name), and how long a replaced SRS secret still
# verifies bounces (postsrsd itself refuses SRS addresses older than 21 days).
MAILHOST_SRS_DOMAIN = env_str("MAILHOST_SRS_DOMAIN", "").strip().lower().rstrip(".")
MAILHOST_SRS_GRACE_DAYS = env_int("MAILHOST_SRS_GRACE_DAYS", 21)
# A domain whose ownership is not verified yet is checked this often for its TXT token.
MAILHOST_DOMAIN_VERIFY_INTERVAL_MINUTES = env_int("MAILHOST_DOMAIN_VERIFY_INTERVAL_MINUTES", 10)
# The report intake (README "Reports"): at every hosted domain these local parts are delivered
# into the mail node's report spool, which the worker reads into the portal. The default DMARC
# and TLS-RPT report addresses of a new domain are the intake's ({domain} is filled in).
MAILHOST_REPORT_INTAKE_LOCAL_PARTS = env_list(
    "MAILHOST_REPORT_INTAKE_LOCAL_PARTS", ["dmarc-reports", "tlsrpt-reports"]
)
MAILHOST_DMARC_RUA = env_list("MAILHOST_DMARC_RUA", ["mailto:dmarc-reports@{domain}"])
MAILHOST_TLSRPT_RUA = env_list("MAILHOST_TLSRPT_RUA", ["mailto:tlsrpt-reports@{domain}"])
MAILHOST_BIMI_MAX_BYTES = env_int("MAILHOST_BIMI_MAX_BYTES", 32 * 1024)
MAILHOST_MTASTS_MODE = env_str("MAILHOST_MTASTS_MODE", "testing")
MAILHOST_MTASTS_MAX_AGE = env_int("MAILHOST_MTASTS_MAX_AGE", 7 * 86400)
MAILHOST_MTASTS_FETCH_TIMEOUT_MS = env_int("MAILHOST_MTASTS_FETCH_TIMEOUT_MS", 5000)
# Outbound TLS (README "Outbound", TLS policy): the level Postfix demands of every destination
# unless a per-domain policy (routing) or the destination's MTA-STS policy says otherwise.
SMTP_OUTBOUND_TLS_MODE = env_str("SMTP_OUTBOUND_TLS_MODE", "may")  # may | encrypt
SMTP_OUTBOUND_DANE_MODE = env_str("SMTP_OUTBOUND_DANE_MODE", "dane")  # off | dane | dane-only
SMTP_OUTBOUND_DNSSEC_VALIDATE = env_bool("SMTP_OUTBOUND_DNSSEC_VALIDATE", True)
SMTP_OUTBOUND_MTA_STS_ENFORCE = env_bool("SMTP_OUTBOUND_MTA_STS_ENFORCE", True)
# A CA bundle for verifying destinations (and MTA-STS policy hosts) instead of the system's.
MAILHOST_OUTBOUND_TLS_CA_FILE = env_str("MAILHOST_OUTBOUND_TLS_CA_FILE", "")
# Outgoing TLS reports (RFC 8460; README "Outbound", TLS reports): sent daily from this address
# (at a hosted domain, so the node's OpenDKIM signs them); empty: none are sent. The report's
# organization-name (default: the address's domain), and the networks an https: report URI may
# point into besides public addresses (as MAILHOST_WEBHOOK_ALLOWED_NETWORKS).
MAILHOST_TLSRPT_FROM = env_str("MAILHOST_TLSRPT_FROM", "")
MAILHOST_TLSRPT_ORGANISATION = env_str("MAILHOST_TLSRPT_ORGANISATION", "")
MAILHOST_TLSRPT_ALLOWED_NETWORKS = env_list("MAILHOST_TLSRPT_ALLOWED_NETWORKS", [])
MAILHOST_TLSRPT_SEND_HOUR = env_int("MAILHOST_TLSRPT_SEND_HOUR", 1)  # UTC
CELERY_BEAT_SCHEDULE |= {
    "routing-tls-reports": {"task": "routing.send_tls_reports",
                            "schedule": crontab(hour=MAILHOST_TLSRPT_SEND_HOUR, minute=7)},
    "routing-tls-failures": {"task": "routing.collect_tls_failures", "schedule": 60},
    # SRS secret and ARC key exist; replaced SRS secrets leave after their grace period.
    "forwarding-keys": {"task": "routing.forwarding_housekeep", "schedule": 3600},
    "dns-checks-due": {"task": "identity.check_due", "schedule": 60},
    "dkim-rotations": {"task": "identity.rotate_due", "schedule": 3600},
}

# Pages: /mail-admin/ for operators, /mailbox/ for mailbox holders (see docker/.env.example).
MAILHOST_PAGE_SIZE = env_int("MAILHOST_PAGE_SIZE", 50)
# Where "Open webmail" signs the holder in (default /webmail/ on this host, via the edge).
MAILHOST_WEBMAIL_URL = env_str("MAILHOST_WEBMAIL_URL", "")
MAILBOX_PORTAL_IDLE_SECONDS = env_int("MAILBOX_PORTAL_IDLE_SECONDS", 30 * 60)
MAILBOX_PORTAL_MAX_SECONDS = env_int("MAILBOX_PORTAL_MAX_SECONDS", 12 * 3600)
MAILBOX_PORTAL_LOGIN_ATTEMPTS = env_int("MAILBOX_PORTAL_LOGIN_ATTEMPTS", 5)  # per IP + address
MAILBOX_PORTAL_LOGIN_IP_ATTEMPTS = env_int("MAILBOX_PORTAL_LOGIN_IP_ATTEMPTS", 30)  # per IP
MAILBOX_PORTAL_LOGIN_WINDOW_SECONDS = env_int("MAILBOX_PORTAL_LOGIN_WINDOW_SECONDS", 15 * 60)
CELERY_IMPORTS = ["mailboxes.import_tasks"]  # bulk CSV import of mailboxes

# Provisioning API (/api/v1/): per-token rate limit, body size caps, bulk size, idempotency.
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 600)  # requests per window per token/user; 0: off
API_RATE_LIMIT_WINDOW_SECONDS = env_int("API_RATE_LIMIT_WINDOW_SECONDS", 60)
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 64 * 1024)  # larger bodies get 413
API_BULK_MAX_BODY_BYTES = env_int("API_BULK_MAX_BODY_BYTES", 8 * 1024 * 1024)  # bulk endpoint
API_BULK_MAX_ENTRIES = env_int("API_BULK_MAX_ENTRIES", 10_000)  # rows per bulk request
API_IDEMPOTENCY_TTL_HOURS = env_int("API_IDEMPOTENCY_TTL_HOURS", 24)  # Idempotency-Key replay
API_HEALTH_NODE_STALE_SECONDS = env_int("API_HEALTH_NODE_STALE_SECONDS", 1800)  # lag + no apply

# --- HTTPS, proxies and Content-Security-Policy (README: "Security model" → "Portal and API") ---
# Production mode: browsers reach the portal only over HTTPS (served by a TLS proxy in front of
# it). Secure cookies, HSTS and the http→https redirect follow from it. On unless DEBUG is;
# `make up` (plain http://127.0.0.1:8000) and the test suite set it false explicitly.
MAILHOST_HTTPS = env_bool("MAILHOST_HTTPS", not DEBUG)
# Addresses or networks (comma-separated, e.g. 127.0.0.1,10.0.0.0/24) of the proxies in front
# of the portal. Only their X-Forwarded-Proto and X-Forwarded-For are believed: from anyone
# else the headers are dropped, so a client cannot pose as HTTPS or as another IP address.
MAILHOST_TRUSTED_PROXIES = env_list("MAILHOST_TRUSTED_PROXIES", [])
if MAILHOST_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
MIDDLEWARE.insert(0, "mailhost.middleware.TrustedProxyMiddleware")  # first: before any reader
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = MAILHOST_HTTPS
SECURE_SSL_REDIRECT = MAILHOST_HTTPS
# Load balancers probe health and mail clients fetch autoconfig over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$", r"^mail/config-v1\.1\.xml$", r"^\.well-known/"]
SECURE_HSTS_SECONDS = env_int("MAILHOST_HSTS_SECONDS", 31_536_000 if MAILHOST_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MAILHOST_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("MAILHOST_HSTS_PRELOAD", False)
if not SECURE_HSTS_PRELOAD:
    # `preload` lets anyone submit the registrable domain to browsers' built-in HSTS lists,
    # forcing HTTPS on every sibling host for months: the operator's call, off by default.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Every page gets a strict policy: scripts, styles, fonts and connections from this origin only,
# no inline script or style, images also as data: URIs (allauth's TOTP QR code), no framing.
INSTALLED_APPS.append("csp")
# With ninja installed, /api/v1/docs serves Swagger UI from our static files, not a CDN's
# inline-script page.
INSTALLED_APPS.append("ninja")
MIDDLEWARE.append("csp.middleware.CSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# "Open webmail" in /mailbox/ is a form whose answer redirects to the webmail: when that is on
# another origin (`make up`: the portal on :8000, webmail on the edge), the CSP must allow it.
if urlsplit(MAILHOST_WEBMAIL_URL).scheme in ("http", "https"):
    _webmail = urlsplit(MAILHOST_WEBMAIL_URL)
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        f"{_webmail.scheme}://{_webmail.netloc}")

# --- Inbound filtering (README "Inbound mail"; docs/inbound.md) ---------------------------------
# Rspamd scores every message arriving on the MX port (SPF, DKIM, DMARC, ARC, spam rules,
# greylisting); the node's unbound resolves for it. Scores: at the junk score a message is filed
# into Junk, at the reject score refused at SMTP (per domain overridable in the portal).
MAILHOST_INBOUND_JUNK_SCORE = env_int("MAILHOST_INBOUND_JUNK_SCORE", 6)
MAILHOST_INBOUND_REJECT_SCORE = env_int("MAILHOST_INBOUND_REJECT_SCORE", 15)
# Greylisting: a message from an outside sender scoring at least this (and below the junk score)
# is deferred (451) the first time its sender, recipient and /19 network are seen, for
# MAILHOST_GREYLIST_DELAY_SECONDS; the triplet is then known for MAILHOST_GREYLIST_EXPIRE_SECONDS.
# The default, -100, greylists every unknown sender; 0 spares mail that authenticates well.
MAILHOST_GREYLIST_SCORE = env_int("MAILHOST_GREYLIST_SCORE", -100)
MAILHOST_GREYLIST_DELAY_SECONDS = env_int("MAILHOST_GREYLIST_DELAY_SECONDS", 300)
MAILHOST_GREYLIST_EXPIRE_SECONDS = env_int("MAILHOST_GREYLIST_EXPIRE_SECONDS", 86400)
# The circuit breaker: greylisting stops deferring while the node's resolver fails or more than
# this many messages wait in the deferred queue.
MAILHOST_GREYLIST_BREAKER_DEFERRED = env_int("MAILHOST_GREYLIST_BREAKER_DEFERRED", 500)
# Rspamd's Redis (greylisting, rate limits, Bayes): node-local; empty turns those off.
MAILHOST_RSPAMD_REDIS_URL = env_str("MAILHOST_RSPAMD_REDIS_URL", REDIS_URL)
# Retention in Rspamd's Redis: rows of scan history kept, and days a Bayes token lives after it
# was last learned (0: never expires).
MAILHOST_RSPAMD_HISTORY_ROWS = env_int("MAILHOST_RSPAMD_HISTORY_ROWS", 200)
MAILHOST_RSPAMD_BAYES_EXPIRE_DAYS = env_int("MAILHOST_RSPAMD_BAYES_EXPIRE_DAYS", 100)
# Rspamd's compiled regex cache (~50 MB; a cold compile takes ~20 s). Empty: in the node dir.
MAILHOST_RSPAMD_CACHE_DIR = env_str("MAILHOST_RSPAMD_CACHE_DIR", "")
# The resolver: "recursive" (production: resolves the internet, validating DNSSEC, through
# MAILHOST_RESOLVER_UPSTREAMS if set, "ip" or "ip@port") or "local" (development, tests, offline:
# answers only for the hosted domains, with the records the portal generates, and fixtures).
MAILHOST_RESOLVER_MODE = env_str("MAILHOST_RESOLVER_MODE",
                                 "local" if MAILHOST_STACK_DEV else "recursive")
MAILHOST_RESOLVER_UPSTREAMS = env_list("MAILHOST_RESOLVER_UPSTREAMS", [])
# SMTP abuse limits on the MX port, per client address (Postfix anvil) and per message.
MAILHOST_SMTP_CONNECTION_RATE_LIMIT = env_int("MAILHOST_SMTP_CONNECTION_RATE_LIMIT", 60)
MAILHOST_SMTP_MESSAGE_RATE_LIMIT = env_int("MAILHOST_SMTP_MESSAGE_RATE_LIMIT", 120)
MAILHOST_SMTP_MAX_RECIPIENTS = env_int("MAILHOST_SMTP_MAX_RECIPIENTS", 100)
# Loopback clients that may present another client address with XCLIENT (the test harness and
# `make bench` only). Empty in production.
MAILHOST_SMTP_XCLIENT_HOSTS = env_list("MAILHOST_SMTP_XCLIENT_HOSTS", [])
CELERY_BEAT_SCHEDULE |= {
    "collect-inbound-flow": {
        "task": "identity.collect_inbound_all",
        "schedule": env_int("MAILHOST_INBOUND_COLLECT_SECONDS", 300),
    },
}

# --- DMARC and TLS reports (README "Reports"; app reports/) -----------------------------------
# Limits on what one submission (an upload, an API call or a mail message) may be: received
# bytes, one report's bytes after decompression, rows of an aggregate report, reports in one
# submission. Anything beyond is rejected with the reason recorded; nothing of it is stored.
# (The API also refuses bodies over API_BULK_MAX_BODY_BYTES with 413 before reading them.)
MAILHOST_REPORT_MAX_BYTES = env_int("MAILHOST_REPORT_MAX_BYTES", 8 * 1024 * 1024)
MAILHOST_REPORT_MAX_UNCOMPRESSED_BYTES = env_int(
    "MAILHOST_REPORT_MAX_UNCOMPRESSED_BYTES", 25 * 1024 * 1024
)
MAILHOST_REPORT_MAX_RECORDS = env_int("MAILHOST_REPORT_MAX_RECORDS", 50_000)
MAILHOST_REPORT_MAX_PARTS = env_int("MAILHOST_REPORT_MAX_PARTS", 10)
# DMARC failure samples (personal data, minimised) are deleted this many days after arrival.
MAILHOST_REPORT_FAILURE_RETENTION_DAYS = env_int("MAILHOST_REPORT_FAILURE_RETENTION_DAYS", 30)
# How often the worker reads each node's report spool (seconds).
MAILHOST_REPORT_INTAKE_SECONDS = env_int("MAILHOST_REPORT_INTAKE_SECONDS", 300)
# Retention (days; 0 keeps forever): aggregate and TLS reports after the period they cover,
# the log of submissions after arrival. Pruned daily by the housekeeping (status.housekeep).
MAILHOST_REPORT_RETENTION_DAYS = env_int("MAILHOST_REPORT_RETENTION_DAYS", 400)
MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS = env_int("MAILHOST_REPORT_SUBMISSION_RETENTION_DAYS",
                                                    90)
# /metrics (Prometheus text format) answers only with this bearer token; empty: 404.
MAILHOST_METRICS_TOKEN = env_secret("MAILHOST_METRICS_TOKEN") or ""
# How long /metrics waits for each node's counters (Dovecot's stats listener) before it
# serves mailhost_node_source_up 0 for them instead.
MAILHOST_METRICS_NODE_TIMEOUT_MS = env_int("MAILHOST_METRICS_NODE_TIMEOUT_MS", 1500)
CELERY_BEAT_SCHEDULE |= {
    "report-intake": {"task": "reports.intake_all", "schedule": MAILHOST_REPORT_INTAKE_SECONDS},
}

# --- Status page (README "Status"; app status/) ----------------------------------------------
# How often every check runs (nodes check themselves on their queues; the portal the rest).
MAILHOST_STATUS_CHECK_SECONDS = env_int("MAILHOST_STATUS_CHECK_SECONDS", 120)
# Where alerts go (a state change, once); empty: shown on the status page and logged only.
MAILHOST_STATUS_ALERT_EMAILS = env_list("MAILHOST_STATUS_ALERT_EMAILS", [])
# A volume is a problem at this use (percent), or when its growth fills it within these days:
# well before Postfix (queue_minfree) and Dovecot start refusing.
MAILHOST_STATUS_DISK_PERCENT = env_int("MAILHOST_STATUS_DISK_PERCENT", 85)
MAILHOST_STATUS_DISK_FORECAST_DAYS = env_int("MAILHOST_STATUS_DISK_FORECAST_DAYS", 7)
# The mail queue is a problem beyond this many messages, or with one older than this.
MAILHOST_STATUS_QUEUE_MAX_SIZE = env_int("MAILHOST_STATUS_QUEUE_MAX_SIZE", 500)
MAILHOST_STATUS_QUEUE_MAX_AGE_HOURS = env_int("MAILHOST_STATUS_QUEUE_MAX_AGE_HOURS", 24)
# A TLS certificate is a problem this many days before it expires.
MAILHOST_STATUS_CERT_WARN_DAYS = env_int("MAILHOST_STATUS_CERT_WARN_DAYS", 14)
# Blocklists every public IP is checked against ("zone" or "zone|removal URL with {ip}"), and
# how long a DNSBL answer is reused. Public DNSBLs refuse queries from big public resolvers:
# point MAILHOST_DNS_RESOLVERS at a resolver of your own.
MAILHOST_DNSBL_ZONES = env_list(
    "MAILHOST_DNSBL_ZONES", ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"]
)
MAILHOST_DNSBL_CACHE_SECONDS = env_int("MAILHOST_DNSBL_CACHE_SECONDS", 3600)
CELERY_BEAT_SCHEDULE |= {
    "status-checks": {"task": "status.check_all", "schedule": MAILHOST_STATUS_CHECK_SECONDS},
}

# --- Housekeeping (README "Housekeeping"; status/housekeeping.py): daily, each run recorded ----
# Days kept (0: forever): the inbound mail-flow counters, the status page's alerts and run log.
MAILHOST_INBOUND_FLOW_RETENTION_DAYS = env_int("MAILHOST_INBOUND_FLOW_RETENTION_DAYS", 400)
MAILHOST_STATUS_HISTORY_RETENTION_DAYS = env_int("MAILHOST_STATUS_HISTORY_RETENTION_DAYS", 90)
# A node's daemon log over this size is compressed aside and emptied; compressed logs are
# deleted after MAILHOST_LOG_RETENTION_DAYS (0: kept).
MAILHOST_LOG_MAX_BYTES = env_int("MAILHOST_LOG_MAX_BYTES", 50 * 1024 * 1024)
MAILHOST_LOG_RETENTION_DAYS = env_int("MAILHOST_LOG_RETENTION_DAYS", 30)
CELERY_BEAT_SCHEDULE |= {
    "housekeeping": {"task": "status.housekeep_all", "schedule": 86400},
}

# --- Backups (docs/operations.md): off until a target is set -----------------------------
# A local directory, or S3-compatible storage (S3 wins when a bucket is set). The S3 variables
# are also read under the bare names the issue and other tools use (S3_BUCKET, S3_ENDPOINT, …).
def _backup_s3(name: str, default: str = "") -> str:
    return env_str(f"MAILHOST_BACKUP_{name}", "") or env_str(name, default)


def _backup_s3_secret(name: str) -> str:
    return env_secret(f"MAILHOST_BACKUP_{name}") or env_secret(name) or ""


MAILHOST_BACKUP_DIR = env_str("MAILHOST_BACKUP_DIR", "")
MAILHOST_BACKUP_S3_ENDPOINT = _backup_s3("S3_ENDPOINT")
MAILHOST_BACKUP_S3_REGION = _backup_s3("S3_REGION")
MAILHOST_BACKUP_S3_BUCKET = _backup_s3("S3_BUCKET")
MAILHOST_BACKUP_S3_PREFIX = env_str("MAILHOST_BACKUP_S3_PREFIX", "")
MAILHOST_BACKUP_S3_ACCESS_KEY_ID = _backup_s3_secret("S3_ACCESS_KEY_ID")
MAILHOST_BACKUP_S3_SECRET_ACCESS_KEY = _backup_s3_secret("S3_SECRET_ACCESS_KEY")
MAILHOST_BACKUP_S3_FORCE_PATH_STYLE = env_bool(
    "MAILHOST_BACKUP_S3_FORCE_PATH_STYLE", env_bool("S3_FORCE_PATH_STYLE", False)
)
# Retention: the newest snapshot of each of the last N days, ISO weeks and months is kept.
MAILHOST_BACKUP_KEEP_DAILY = env_int("MAILHOST_BACKUP_KEEP_DAILY", 7)
MAILHOST_BACKUP_KEEP_WEEKLY = env_int("MAILHOST_BACKUP_KEEP_WEEKLY", 4)
MAILHOST_BACKUP_KEEP_MONTHLY = env_int("MAILHOST_BACKUP_KEEP_MONTHLY", 12)
# The scheduled whole-install backup (then prune); it does nothing while no target is set.
MAILHOST_BACKUP_SECONDS = env_int("MAILHOST_BACKUP_SECONDS", 86400)
CELERY_BEAT_SCHEDULE |= {
    "backup-install": {"task": "backups.backup_install", "schedule": MAILHOST_BACKUP_SECONDS},
}

# --- Tracing (README "Tracing"; mailhost/tracing.py): off unless OTEL_ENABLED ------------------
OTEL_ENABLED = env_bool("OTEL_ENABLED", False)
# The collector's OTLP/HTTP base URL; spans go to <endpoint>/v1/traces.
OTEL_EXPORTER_OTLP_ENDPOINT = env_str("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
OTEL_SERVICE_NAME = env_str("OTEL_SERVICE_NAME", "mailhost")
# The share of new traces kept (0.0-1.0); a task or request inside a trace follows its parent.
try:
    OTEL_SAMPLE_RATIO = float(env_str("OTEL_SAMPLE_RATIO", "1.0"))
except ValueError:
    raise ImproperlyConfigured("OTEL_SAMPLE_RATIO must be a number from 0 to 1") from None
if not 0.0 <= OTEL_SAMPLE_RATIO <= 1.0:
    raise ImproperlyConfigured("OTEL_SAMPLE_RATIO must be a number from 0 to 1")
