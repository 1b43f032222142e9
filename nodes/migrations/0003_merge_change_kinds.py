from django.db import migrations


class Migration(migrations.Migration):
    """Four change kinds were added side by side; this joins them (0004 sets the choices)."""

    dependencies = [
        ("nodes", "0002_nodechange_kind_outbound"),
        ("nodes", "0002_nodechange_kind_relay"),
        ("nodes", "0002_tls_policy"),
        ("nodes", "0002_nodechange_kind_forwarding"),
    ]

    operations = []
