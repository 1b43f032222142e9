from django.db import migrations


class Migration(migrations.Migration):
    """Relays and the TLS policy were written side by side; this joins them."""

    dependencies = [
        ("routing", "0001_relays"),
        ("routing", "0001_tls_policy"),
    ]

    operations = []
