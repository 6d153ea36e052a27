from django.apps import AppConfig


class SensorsConfig(AppConfig):
    """Rigs, their sensors, simulators and validation rules: what exists before any recording."""

    name = "sensors"
    default_auto_field = "django.db.models.BigAutoField"
