"""Readings due and never stored (a worker's buffer overflowed) make the record say so everywhere."""

import pytest
from django.test import Client

from sessions.models import RecordingSession
from sessions.recording.pipeline import SessionRecorder, readings_record
from sessions.services import session_complete, session_start
from tests.conftest import items

pytestmark = pytest.mark.django_db


@pytest.fixture
def lossy(sim_rig):
    """A completed session of the simulated rig with readings of every sensor, 40 of them lost."""
    RecordingSession.objects.filter(status="recording").update(status="aborted")
    session = session_start(rig=sim_rig)
    recorder = SessionRecorder(session.pk)
    # Quiet values: no rule fires, so only the lost readings can spoil the verdict.
    batch = items("force", [10.0] * 5) + items("motor", [1.0] * 5) + items("camera", [
        {"image_id": 1001 + i, "resolution": "640x480", "brightness": 128, "exposure": 1.0} for i in range(5)
    ])
    readings_record(recorder=recorder, items=batch)
    RecordingSession.objects.filter(pk=session.pk).update(lost_readings=40)
    return session_complete(session_id=session.pk, publish=False)


def test_a_session_that_lost_readings_has_the_verdict_error_and_the_api_says_how_many(lossy, staff_client):
    assert lossy.verdict == "error"
    body = staff_client.get(f"/api/v1/sessions/{lossy.pk}/").json()
    assert body["lost_readings"] == 40 and body["verdict"] == "error" and body["reading_count"] == 15


def test_the_same_readings_without_a_loss_pass(sim_rig):
    RecordingSession.objects.filter(status="recording").update(status="aborted")
    session = session_start(rig=sim_rig)
    readings_record(recorder=SessionRecorder(session.pk), items=items("force", [10.0] * 5) + items("motor", [1.0] * 5)
                    + items("camera", [{"image_id": 1, "resolution": "640x480", "brightness": 128, "exposure": 1.0}]))
    assert session_complete(session_id=session.pk, publish=False).verdict == "pass"


def test_the_review_page_shows_the_lost_readings(lossy, staff_user):
    client = Client()
    client.force_login(staff_user)
    html = client.get(f"/sessions/{lossy.pk}/").content.decode()
    assert 'id="review-lost"' in html and ">40<" in html
