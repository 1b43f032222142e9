import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.stack", "tests.dns_server"]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Parallel test runs (several checkouts on one machine) each get their own test database."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    suffix = os.environ.get("TEST_DB_SUFFIX")
    test = database.setdefault("TEST", {})
    if database["ENGINE"].endswith("sqlite3"):
        # A file beside the configured one, never Django's in-memory default: the embedded
        # default is tested as `make up` runs it (a file, WAL, several connections locking).
        path = Path(database["NAME"])
        name = f"test_{path.stem}_{suffix}" if suffix else f"test_{path.stem}"
        test["NAME"] = str(path.with_name(f"{name}.sqlite3"))
    elif suffix:
        test["NAME"] = f"test_{database['NAME']}_{suffix}"


# --- browser tests (pytest-playwright with Debian's Chromium; no browser download) ----------

SCREENSHOTS_DIR = os.path.join(os.path.dirname(__file__), "var", "screenshots")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": [
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync",
        ],
    }


@pytest.fixture
def screenshots_dir():
    """Where browser tests save a screenshot of each main page (var/screenshots/)."""
    os.makedirs(SCREENSHOTS_DIR, exist_ok=True)
    return SCREENSHOTS_DIR
