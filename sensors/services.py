"""Writes of rigs and sensors."""

from django.db import transaction

from sensors.models import Rig, Sensor


def rig_create(*, name: str, source: str = Rig.Source.EXTERNAL, description: str = "", sensors: list[dict]) -> Rig:
    """Create a rig with its sensors, together or not at all."""
    with transaction.atomic():
        rig = Rig.objects.create(name=name, source=source, description=description)
        Sensor.objects.bulk_create(
            [
                Sensor(
                    rig=rig, name=s["name"], sensor_type=s["sensor_type"], unit=s.get("unit", ""),
                    rate_hz=s.get("rate_hz"),
                )
                for s in sensors
            ]
        )
    return rig
