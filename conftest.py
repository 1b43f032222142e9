import os

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Parallel test runs (several checkouts on one machine) each get their own test database."""
    from django.conf import settings

    suffix = os.environ.get("TEST_DB_SUFFIX")
    if suffix:
        test = settings.DATABASES["default"].setdefault("TEST", {})
        test["NAME"] = f"test_{settings.DATABASES['default']['NAME']}_{suffix}"
