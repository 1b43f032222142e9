import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tenants.access import SYSTEM
from tenants.audit import audit_record
from tests.factories import (
    AliasFactory,
    DomainFactory,
    MailboxFactory,
    MembershipFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m.__name__)
def test_it_registers_every_model_with_a_working_changelist(staff_client, model):
    assert staff_client.get(_changelist(model)).status_code == 200


def _add_rows(count: int) -> None:
    domain = DomainFactory()
    for _ in range(count):
        MailboxFactory(domain=domain)
        AliasFactory(domain=domain)
        MembershipFactory(organisation=domain.organisation)
        audit_record(
            actor=SYSTEM,
            organisation_id=domain.organisation_id,
            action="x",
            target_type="t",
            target="y",
        )


@pytest.mark.parametrize("model_name", ["mailbox", "alias", "domain", "membership", "auditevent"])
def test_it_lists_without_a_query_per_row(staff_client, model_name):
    model = next(m for m in admin.site._registry if m._meta.model_name == model_name)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(_changelist(model)).status_code == 200
        return len(captured)

    _add_rows(2)
    few = queries()
    _add_rows(8)
    assert queries() == few
