"""The engines hear of a start, stop or reset from the database: a NOTIFY once the session is committed."""

import psycopg
import pytest

from sensors.models import Rig
from sessions.engine import _listen_params
from sessions.live.events import ENGINE_CHANNEL
from sessions.models import RecordingSession
from sessions.services import session_reset, session_start

# transaction=True: the wake-up is sent after the commit, which a test inside one transaction never makes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def listener():
    with psycopg.connect(**_listen_params(), autocommit=True) as conn:
        conn.execute(f"LISTEN {ENGINE_CHANNEL}")
        yield conn


def _heard(conn) -> int:
    return sum(1 for _ in conn.notifies(timeout=1.0, stop_after=5))


def test_a_started_session_is_notified_to_the_engines_after_its_commit(listener):
    RecordingSession.objects.filter(status="recording").update(status="aborted")
    rig = Rig.objects.create(name="wake", source=Rig.Source.SIMULATED)

    session = session_start(rig=rig)

    assert _heard(listener) == 1
    assert RecordingSession.objects.get(pk=session.pk).status == "recording"
    session_reset(rig=rig)
    assert _heard(listener) == 1


def test_a_start_that_fails_wakes_no_engine(listener):
    rig = Rig.objects.create(name="wake-twice", source=Rig.Source.SIMULATED)
    session_start(rig=rig)
    assert _heard(listener) == 1

    with pytest.raises(Exception, match="already recording"):
        session_start(rig=rig)

    assert _heard(listener) == 0
