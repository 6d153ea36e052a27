import pytest
from django.db import IntegrityError
from django.utils import timezone

from sessions.models import RecordingSession


def test_migration_creates_the_simulated_rig_with_its_three_sensors(sim_rig):
    assert sim_rig.source == "simulated"
    assert {(s.name, s.sensor_type) for s in sim_rig.sensors.all()} == {
        ("force", "force"), ("motor", "motor"), ("camera", "camera")
    }


def test_a_rig_records_at_most_one_session_at_a_time(sim_rig):
    RecordingSession.objects.create(rig=sim_rig, started_at=timezone.now())
    with pytest.raises(IntegrityError):
        RecordingSession.objects.create(rig=sim_rig, started_at=timezone.now())
