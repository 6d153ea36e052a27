"""The session list pages newest first by (started_at, id): an index on the pair lets its first page
and any later one (keyset after a position) read 50 index entries instead of sorting every session."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recording", "0007_roles"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="recordingsession",
            index=models.Index(fields=["started_at", "id"], name="session_started_idx"),
        ),
    ]
