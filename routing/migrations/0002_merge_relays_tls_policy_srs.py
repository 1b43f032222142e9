from django.db import migrations


class Migration(migrations.Migration):
    """Relays, the TLS policy and SRS/ARC were written side by side; this joins them."""

    dependencies = [
        ("routing", "0001_relays"),
        ("routing", "0001_tls_policy"),
        ("routing", "0001_srs"),
    ]

    operations = []
