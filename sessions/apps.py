from django.apps import AppConfig


class RecordingConfig(AppConfig):
    """Recording sessions, their readings and validation results, the pipeline and the engine."""

    name = "sessions"
    # `sessions` would clash with django.contrib.sessions.
    label = "recording"
    verbose_name = "Recording"
    default_auto_field = "django.db.models.BigAutoField"
