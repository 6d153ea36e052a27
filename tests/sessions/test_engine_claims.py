"""How engines share sessions: even shares, dead owners' sessions taken, a silenced owner fenced out."""

import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sensors.models import Rig, Sensor
from sessions.engine import _claim_sessions, _died_here
from sessions.models import EngineHeartbeat, Reading, RecordingSession
from sessions.recording.pipeline import SessionNotRecording, SessionRecorder, readings_record
from sessions.services import session_start
from tests.conftest import items

pytestmark = pytest.mark.django_db


def _simulated_sessions(count: int) -> list[int]:
    ids = []
    for i in range(count):
        rig = Rig.objects.create(name=f"sim-{i}", source=Rig.Source.SIMULATED)
        Sensor.objects.create(rig=rig, name="fz", sensor_type="force", rate_hz=10.0)
        ids.append(session_start(rig=rig).pk)
    return ids


def _beat(name: str, *, age: float = 0.0) -> None:
    EngineHeartbeat.objects.update_or_create(
        name=name, defaults={"pid": 1, "beat_at": timezone.now() - timedelta(seconds=age)}
    )


def _owners() -> dict[int, str]:
    return dict(RecordingSession.objects.filter(status="recording").values_list("pk", "engine"))


@pytest.mark.parametrize("sessions", [1, 2, 5, 6])
def test_two_live_engines_split_the_sessions_evenly_whoever_claims_first(sessions):
    RecordingSession.objects.filter(status="recording").update(status="aborted")  # the migration's sim session, if any
    ids = _simulated_sessions(sessions)
    _beat("engine-a")
    _beat("engine-b")
    # Engine A polls first, and again, before B polls at all: it still takes only its share.
    first = _claim_sessions("engine-a")
    again = _claim_sessions("engine-a")
    second = _claim_sessions("engine-b")
    assert set(first) == set(again)
    assert set(first) | set(second) == set(ids)
    assert not set(first) & set(second)
    assert len(first) == -(-sessions // 2)
    assert abs(len(first) - len(second)) <= 1
    assert set(_owners().values()) <= {"engine-a", "engine-b"}


def test_a_silent_engines_sessions_are_taken_but_not_right_after_a_database_outage(settings):
    settings.ROBOTEST_HEARTBEAT_TIMEOUT = 5.0
    RecordingSession.objects.filter(status="recording").update(status="aborted")
    ids = _simulated_sessions(2)
    _beat("engine-a")
    _beat("engine-b")
    assert len(_claim_sessions("engine-a")) == 1
    assert len(_claim_sessions("engine-b")) == 1
    _beat("engine-b", age=6.0)  # B has not beaten for longer than the timeout
    # Just after the database came back, nobody has beaten for a while: B is not taken for dead.
    assert len(_claim_sessions("engine-a", take_from_silent=False)) == 1
    # Once A has beaten for a timeout's length and B still has not, A takes B's session.
    assert set(_claim_sessions("engine-a")) == set(ids)
    assert set(_owners().values()) == {"engine-a"}


def test_a_flush_by_an_engine_that_lost_the_session_stores_nothing(sim_rig):
    RecordingSession.objects.filter(status="recording").update(status="aborted")
    session = session_start(rig=sim_rig)
    RecordingSession.objects.filter(pk=session.pk).update(engine="engine-b")
    recorder = SessionRecorder(session.pk)
    with pytest.raises(SessionNotRecording, match="engine-b"):
        readings_record(recorder=recorder, items=items("force", [1.0, 2.0]), until_stop=True, owner="engine-a")
    assert Reading.objects.filter(session=session).count() == 0
    assert RecordingSession.objects.get(pk=session.pk).reading_count == 0
    result = readings_record(recorder=recorder, items=items("force", [1.0, 2.0]), until_stop=True, owner="engine-b")
    assert result.accepted == 2 == Reading.objects.filter(session=session).count()


def test_an_engine_of_this_host_killed_and_not_yet_reaped_is_taken_for_dead():
    child = subprocess.Popen(["sleep", "30"])
    name = f"{socket.gethostname()}:{child.pid}"
    try:
        assert not _died_here(name)
        child.kill()
        deadline = time.monotonic() + 5
        while not _died_here(name) and time.monotonic() < deadline:  # a zombie until waited for
            time.sleep(0.01)
        assert _died_here(name)
    finally:
        child.wait()
    assert _died_here(name)
    assert not _died_here(f"another-host:{child.pid}")
