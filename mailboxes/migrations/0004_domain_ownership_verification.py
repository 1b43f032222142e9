# Domain ownership verification: a claim per organisation, one verified owner per name.

import mailboxes.models
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mailboxes', '0003_mailbox_storage_usage'),
        ('tenants', '0002_idempotency_records'),
    ]

    operations = [
        migrations.AddField(
            model_name='domain',
            name='verification_method',
            field=models.CharField(blank=True, choices=[('dns', 'DNS record'), ('staff', 'Marked by staff'), ('special-use', 'Special-use name (.test, .example, .invalid, .localhost)'), ('parent', 'Under a domain the organisation verified'), ('existing', 'Hosted before ownership verification')], max_length=12),
        ),
        migrations.AddField(
            model_name='domain',
            name='verification_token',
            field=models.CharField(default=mailboxes.models.new_verification_token, max_length=64),
        ),
        migrations.AddField(
            model_name='domain',
            name='verified_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='domain',
            name='name',
            field=models.CharField(db_index=True, help_text='IDNA (A-label), lower case.', max_length=253),
        ),
        migrations.AddConstraint(
            model_name='domain',
            constraint=models.UniqueConstraint(condition=models.Q(('verified_at__isnull', False)), fields=('name',), name='domain_one_verified_owner'),
        ),
        migrations.AddConstraint(
            model_name='domain',
            constraint=models.UniqueConstraint(fields=('organisation', 'name'), name='domain_unique_per_organisation'),
        ),
        migrations.AddConstraint(
            model_name='domain',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('verification_method', ''), ('verified_at__isnull', True)), models.Q(('verified_at__isnull', False), models.Q(('verification_method', ''), _negated=True)), _connector='OR'), name='domain_verified_with_a_method'),
        ),
    ]
