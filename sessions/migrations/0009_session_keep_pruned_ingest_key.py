"""Retention and idempotent ingest: a session's `keep` flag and `pruned_at` instant (manage.py
prune_readings), and the ingest batches' `Idempotency-Key`s with the answer each got (kept 24 h)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("recording", "0008_session_started_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="recordingsession",
            name="keep",
            field=models.BooleanField(default=False, help_text="Never prune this session's readings (prune_readings)."),
        ),
        migrations.AddField(
            model_name="recordingsession",
            name="pruned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="IngestKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=200)),
                ("digest", models.CharField(max_length=64)),
                ("status", models.PositiveSmallIntegerField()),
                ("answer", models.JSONField()),
                ("created_at", models.DateTimeField()),
                (
                    "session",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="recording.recordingsession",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["created_at"], name="ingest_key_created")],
                "constraints": [models.UniqueConstraint(fields=("session", "key"), name="ingest_key_per_session")],
            },
        ),
    ]
