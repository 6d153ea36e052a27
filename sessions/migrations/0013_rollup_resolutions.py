from django.db import migrations, models

SECOND = 1_000_000


def rollup_every_resolution(apps, schema_editor):
    # Sessions recorded before: every resolution summed once from their readings, as the
    # pipeline would have written them (0005's rebuild finds no resolution column and leaves it to this).
    from sessions.recording.rollups import rollup_rebuild

    rollup_rebuild()


class Migration(migrations.Migration):

    dependencies = [
        ('recording', '0011_lost_readings'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='readingrollup',
            name='rollup_session_sensor_second',
        ),
        migrations.RemoveIndex(
            model_name='readingrollup',
            name='rollup_sensor_second',
        ),
        migrations.AddField(
            model_name='readingrollup',
            name='resolution',
            field=models.IntegerField(default=SECOND),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name='readingrollup',
            index=models.Index(fields=['sensor', 'field', 'resolution', 'bucket'], name='rollup_sensor_cell'),
        ),
        migrations.AddConstraint(
            model_name='readingrollup',
            constraint=models.UniqueConstraint(
                fields=('session', 'sensor', 'field', 'resolution', 'bucket'), name='rollup_session_sensor_cell'
            ),
        ),
        migrations.RunPython(rollup_every_resolution, migrations.RunPython.noop),
    ]
