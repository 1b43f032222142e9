"""Domain.node points at nodes.MailNode (state only: the column and its foreign key are unchanged,
the table keeps its name)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("mailboxes", "0006_role_addresses"),
        ("nodes", "0001_mailnode_nodechange_from_mailboxes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="domain",
                    name="node",
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name="domains", to="nodes.mailnode"),
                ),
            ],
            database_operations=[],
        ),
    ]
