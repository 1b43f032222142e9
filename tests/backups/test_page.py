"""/mail-admin/backups/: staff see the runs and start one after confirming; nobody else."""

import pytest

from backups.models import BackupRun
from tests.factories import MembershipFactory, UserFactory
from tests.pages.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return client_for(UserFactory(is_staff=True, is_superuser=True))


def test_it_lists_runs_with_pagination(staff, settings, django_assert_max_num_queries):
    settings.MAILHOST_PAGE_SIZE = 2
    for n in range(3):
        BackupRun.objects.create(scope=f"mailbox:m{n}@x.test", target="dir:/b", status="ok",
                                 messages=n)
    with django_assert_max_num_queries(12):
        page = staff.get("/mail-admin/backups/")
    assert page.status_code == 200
    assert b"mailbox:m2@x.test" in page.content and b"mailbox:m0@x.test" not in page.content
    assert b"mailbox:m0@x.test" in staff.get("/mail-admin/backups/?page=2").content


def test_staff_start_a_backup_after_confirming(staff, settings, tmp_path):
    settings.MAILHOST_BACKUP_DIR = str(tmp_path)
    settings.MAILHOST_BACKUP_S3_BUCKET = ""
    asked = staff.get("/mail-admin/backups/start/?scope=install")
    assert asked.status_code == 200 and f"dir:{tmp_path}".encode() in asked.content
    assert not BackupRun.objects.exists()  # asking changes nothing

    done = staff.post("/mail-admin/backups/start/?scope=install")

    assert done.status_code == 302 and done.url == "/mail-admin/backups/"
    run = BackupRun.objects.get()
    assert (run.scope, run.status, run.kind) == ("install", "queued", "backup")


def test_bad_scope_and_missing_target_are_clear_errors(staff, settings, tmp_path):
    settings.MAILHOST_BACKUP_DIR = str(tmp_path)
    settings.MAILHOST_BACKUP_S3_BUCKET = ""
    assert staff.post("/mail-admin/backups/start/?scope=galaxy").status_code == 422
    assert staff.post("/mail-admin/backups/start/?scope=mailbox:no@no.test").status_code == 404
    settings.MAILHOST_BACKUP_DIR = ""
    refused = staff.post("/mail-admin/backups/start/?scope=install")
    assert refused.status_code == 422 and b"No backup target" in refused.content
    assert not BackupRun.objects.exists()


def test_an_organisations_owner_sees_no_backups_and_cannot_start_one(settings, tmp_path):
    settings.MAILHOST_BACKUP_DIR = str(tmp_path)
    BackupRun.objects.create(scope="install", target="dir:/b", status="ok")
    owner = client_for(MembershipFactory(role="owner").user)
    assert owner.get("/mail-admin/backups/").status_code == 403
    assert owner.post("/mail-admin/backups/start/?scope=install").status_code == 403
    assert BackupRun.objects.count() == 1
    assert b"Backups</a>" not in owner.get("/mail-admin/").content
