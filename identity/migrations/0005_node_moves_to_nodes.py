"""The inbound status and flow rows point at nodes.MailNode (state only: nothing in the database
changes, the node table keeps its name)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("identity", "0004_inbound_policy_and_flow"),
        ("nodes", "0001_mailnode_nodechange_from_mailboxes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="inboundflow",
                    name="node",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="inbound_flow", to="nodes.mailnode"),
                ),
                migrations.AlterField(
                    model_name="nodeinboundstatus",
                    name="node",
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name="inbound_status", to="nodes.mailnode"),
                ),
            ],
            database_operations=[],
        ),
    ]
