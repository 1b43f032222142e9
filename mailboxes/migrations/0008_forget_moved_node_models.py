"""MailNode and NodeChange now live in nodes/: forget them here, in Django's state only (their
tables stay, and are nodes/' own)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("mailboxes", "0007_node_moves_to_nodes"),
        ("identity", "0005_node_moves_to_nodes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="NodeChange"),
                migrations.DeleteModel(name="MailNode"),
            ],
            database_operations=[],
        ),
    ]
