"""The roles' permissions on ingest keys (recording.IngestKey, added by 0009), as recording 0007 gives.

viewer and operator: view_ingestkey; admin: all four.
"""

from django.db import migrations

from robotest_site.roles import grant_model_roles


def roles_on_ingest_keys(apps, schema_editor):
    grant_model_roles(apps, schema_editor, app_label="recording", model="ingestkey")


class Migration(migrations.Migration):

    dependencies = [
        ("recording", "0009_session_keep_pruned_ingest_key"),
    ]

    operations = [
        migrations.RunPython(roles_on_ingest_keys, migrations.RunPython.noop),
    ]
