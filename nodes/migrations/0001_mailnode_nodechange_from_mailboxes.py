"""MailNode and NodeChange move from mailboxes/ to nodes/ in Django's state only: their tables
keep their names (`db_table`), so no row moves and no lock is taken. The content types follow, so
admin permissions and log entries keep pointing at them."""

import django.db.models.deletion
from django.db import migrations, models


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("mailnode", "nodechange"):
        if not ContentType.objects.filter(app_label="nodes", model=model).exists():
            ContentType.objects.filter(app_label="mailboxes", model=model).update(app_label="nodes")


def restore_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("mailnode", "nodechange"):
        if not ContentType.objects.filter(app_label="mailboxes", model=model).exists():
            ContentType.objects.filter(app_label="nodes", model=model).update(app_label="mailboxes")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("mailboxes", "0006_role_addresses"),
        ("identity", "0004_inbound_policy_and_flow"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="MailNode",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.SlugField(unique=True)),
                        ("state_dir", models.CharField(max_length=200)),
                        ("desired_revision", models.BigIntegerField(default=0)),
                        ("applied_revision", models.BigIntegerField(default=0)),
                        ("applied_at", models.DateTimeField(blank=True, null=True)),
                        ("last_error", models.TextField(blank=True)),
                        ("last_drift", models.JSONField(blank=True, default=list)),
                        ("last_drift_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "db_table": "mailboxes_mailnode",
                        "ordering": ["name"],
                        "constraints": [models.CheckConstraint(condition=models.Q(("applied_revision__lte", models.F("desired_revision"))), name="node_applied_not_ahead")],
                    },
                ),
                migrations.CreateModel(
                    name="NodeChange",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("revision", models.BigIntegerField()),
                        ("kind", models.CharField(choices=[("domain", "Domain"), ("mailbox", "Mailbox"), ("alias", "Alias"), ("dkim", "Dkim"), ("roles", "Roles")], max_length=10)),
                        ("object_id", models.BigIntegerField()),
                        ("node", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="changes", to="nodes.mailnode")),
                    ],
                    options={
                        "db_table": "mailboxes_nodechange",
                        "indexes": [models.Index(fields=["node", "revision"], name="nodechange_node_rev")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, restore_content_types),
    ]
