"""Creates the simulated rig `sim` with the seed's three sensors."""

from django.db import migrations

SIM_SENSORS = [
    ("force", "force", "N"),
    ("motor", "motor", "RPM"),
    ("camera", "camera", ""),
]


def create_sim_rig(apps, schema_editor):
    Rig = apps.get_model("sensors", "Rig")
    Sensor = apps.get_model("sensors", "Sensor")
    rig, _ = Rig.objects.get_or_create(
        name="sim", defaults={"source": "simulated", "description": "The simulated rig: force, motor, camera."}
    )
    for name, sensor_type, unit in SIM_SENSORS:
        Sensor.objects.get_or_create(rig=rig, name=name, defaults={"sensor_type": sensor_type, "unit": unit})


def remove_sim_rig(apps, schema_editor):
    apps.get_model("sensors", "Rig").objects.filter(name="sim").delete()


class Migration(migrations.Migration):
    dependencies = [("sensors", "0001_initial")]
    operations = [migrations.RunPython(create_sim_rig, remove_sim_rig)]
