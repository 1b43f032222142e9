import csv
import io

from django.core.files.uploadedfile import SimpleUploadedFile

from mailboxes.import_tasks import import_mailboxes
from mailboxes.models import Mailbox, MailboxImport
from mailhost.passwords import verify_password
from tests.factories import DomainFactory, MailboxFactory

IMPORT = "/mail-admin/acme/mailboxes/import/"
EXPORT = "/mail-admin/acme/mailboxes/export.csv"
CSV = (
    "address,display_name,quota_mb,password\n"
    "carla@acme.test,Carla,100,\n"
    "dan@acme.test,Dan,,a-chosen-password\n"
    "anna@acme.test,Taken,,\n"
    "eve@globex.test,Elsewhere,,\n"
    "bad address,,,\n"
    "fay@acme.test,,lots,\n"
)


def upload(client, text, name="people.csv"):
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, text.encode(), "text/csv")})


def test_it_imports_rows_and_reports_each_bad_one(
    owner_client, mailbox, other_org, django_capture_on_commit_callbacks
):
    DomainFactory(organisation=other_org, name="globex.test")
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(owner_client, CSV)
    job = MailboxImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{IMPORT}{job.pk}/"
    assert job.status == "queued" and job.total == 6 and job.source_encrypted
    assert any("_enqueue_import" in repr(cb) for cb in callbacks)

    import_mailboxes.apply(args=[job.pk])  # what the worker does with the queued task

    job.refresh_from_db()
    assert (job.status, job.processed, job.created, job.failed) == ("done", 6, 2, 4)
    assert job.source_encrypted == ""  # the uploaded passwords are not kept
    assert {e["line"] for e in job.errors} == {4, 5, 6, 7}
    assert Mailbox.objects.get(local_part="carla").quota_mb == 100
    assert verify_password("a-chosen-password", Mailbox.objects.get(local_part="dan").password_hash)
    page = owner_client.get(f"{IMPORT}{job.pk}/").content.decode()
    assert "is already a mailbox" in page and "not a domain of this organisation" in page
    assert "Download generated passwords" in page


def test_it_hands_out_generated_passwords_once(owner_client, domain):
    upload(owner_client, "address\nzed@acme.test\n")
    job = MailboxImport.objects.get()
    import_mailboxes.apply(args=[job.pk])
    response = owner_client.post(f"{IMPORT}{job.pk}/passwords.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["address", "password"] and rows[1][0] == "zed@acme.test"
    assert verify_password(rows[1][1], Mailbox.objects.get(local_part="zed").password_hash)
    assert owner_client.post(f"{IMPORT}{job.pk}/passwords.csv").status_code == 409


def test_it_refuses_a_file_that_is_not_a_mailbox_csv(owner_client, domain):
    response = upload(owner_client, "name,email\nx,y\n")
    assert response.status_code == 422 and b"must name the columns" in response.content
    response = upload(owner_client, "address\n")
    assert response.status_code == 422 and b"no rows" in response.content
    response = owner_client.post(IMPORT, {"file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00")})
    assert response.status_code == 422 and b"UTF-8" in response.content
    assert not MailboxImport.objects.exists()


def test_it_forbids_a_viewer_to_import(viewer_client, domain):
    assert viewer_client.get(IMPORT).status_code == 403
    assert upload(viewer_client, "address\nx@acme.test\n").status_code == 403


def test_it_is_404_for_another_organisations_import(owner_client, stranger_client, domain):
    upload(owner_client, "address\nzed@acme.test\n")
    job = MailboxImport.objects.get()
    assert stranger_client.get(f"/mail-admin/acme/mailboxes/import/{job.pk}/").status_code == 404
    assert stranger_client.post(f"{IMPORT}{job.pk}/passwords.csv").status_code == 404


def test_it_serves_progress_as_a_fragment_while_running(owner_client, domain):
    upload(owner_client, "address\nzed@acme.test\n")
    job = MailboxImport.objects.get()
    fragment = owner_client.get(f"{IMPORT}{job.pk}/", headers={"X-Requested-With": "fetch"})
    assert fragment.status_code == 200
    assert b"Importing" in fragment.content and b"<html" not in fragment.content
    import_mailboxes.apply(args=[job.pk])
    fragment = owner_client.get(f"{IMPORT}{job.pk}/", headers={"X-Requested-With": "fetch"})
    assert b"data-final" in fragment.content


def test_it_exports_every_live_mailbox_as_streamed_csv(owner_client, mailbox):
    MailboxFactory(domain=mailbox.domain, local_part="bob", display_name="=cmd()")
    response = owner_client.get(EXPORT)
    assert response.status_code == 200 and response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["address", "display_name", "status"]
    assert [r[0] for r in rows[1:]] == ["anna@acme.test", "bob@acme.test"]
    assert rows[2][1] == "'=cmd()"  # a spreadsheet will not run it


def test_it_exports_in_constant_queries(owner_client, mailbox, django_assert_num_queries):
    def run():
        return b"".join(owner_client.get(EXPORT).streaming_content)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        run()
    for _ in range(30):
        MailboxFactory(domain=mailbox.domain)
    with django_assert_num_queries(len(small.captured_queries)):
        run()


def test_it_is_404_to_export_another_organisation(stranger_client, mailbox):
    assert stranger_client.get(EXPORT).status_code == 404


def test_it_refuses_csv_rows_whose_local_part_the_stack_cannot_serve(owner_client, domain):
    upload(owner_client, "address,display_name,quota_mb,password\n"
                         "plus+tag@acme.test,,,\nt~x@acme.test,,,\nfine@acme.test,,,\n")
    job = MailboxImport.objects.get()
    import_mailboxes.apply(args=[job.pk])
    job.refresh_from_db()
    assert (job.created, job.failed) == (1, 2)
    assert all("a-z, digits 0-9" in error["error"] for error in job.errors), job.errors
    assert list(Mailbox.objects.values_list("local_part", flat=True)) == ["fine"]
