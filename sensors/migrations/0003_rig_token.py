"""Rig tokens (sensors.models.RigToken), with the roles' permissions on them as recording 0007 gives.

viewer and operator: view_rigtoken (the list holds names and the key's first characters, never a
key); admin: all four. Groups that do not exist yet get them from 0007's own loop instead.
"""

import django.db.models.deletion
from django.db import migrations, models

from robotest_site.roles import grant_model_roles


def roles_on_tokens(apps, schema_editor):
    grant_model_roles(apps, schema_editor, app_label="sensors", model="rigtoken")


class Migration(migrations.Migration):

    dependencies = [
        ('sensors', '0002_sim_rig'),
        ('recording', '0007_roles'),
    ]

    operations = [
        migrations.CreateModel(
            name='RigToken',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(
                    blank=True, help_text='What holds the key (a PLC, a script).', max_length=100)),
                ('digest', models.CharField(editable=False, max_length=64, unique=True)),
                ('hint', models.CharField(editable=False, max_length=12)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('rig', models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name='tokens', to='sensors.rig')),
            ],
            options={
                'ordering': ['rig_id', '-created_at'],
            },
        ),
        migrations.RunPython(roles_on_tokens, migrations.RunPython.noop),
    ]
