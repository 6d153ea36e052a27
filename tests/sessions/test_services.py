"""Session services against the real database, with a second connection where a race needs one."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from sensors.models import Rig
from sessions.models import RecordingSession
from sessions.services import SessionConflict, session_start, session_stop

# serialized_rollback: the data migration's `sim` rig survives the flush between tests.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_stop_instant_is_taken_after_a_batch_being_stored_commits():
    """A batch holding the session's row lock was generated up to its own instant: a stop that
    arrives meanwhile must not place the stop instant before it, or the batch stores readings
    stamped after the stop (CI saw one 97 µs after it)."""
    session = session_start(rig=Rig.objects.get(name="sim"), name="race")
    locked = threading.Event()
    released: list = []

    def batch_in_progress():
        try:
            with transaction.atomic():
                RecordingSession.objects.select_for_update().get(pk=session.pk)
                locked.set()
                time.sleep(0.3)
                released.append(timezone.now())
        finally:
            connection.close()

    writer = threading.Thread(target=batch_in_progress)
    writer.start()
    assert locked.wait(5)
    stopped = session_stop(session=session)
    writer.join(5)

    assert stopped.status == RecordingSession.Status.COMPLETED
    assert stopped.stopped_at >= released[0]


def test_stopping_a_completed_session_is_a_conflict_and_keeps_its_stop_instant():
    session = session_start(rig=Rig.objects.get(name="sim"), name="twice")
    first = session_stop(session=session)
    with pytest.raises(SessionConflict, match=f"session {session.pk} is not recording"):
        session_stop(session=session)
    assert RecordingSession.objects.get(pk=session.pk).stopped_at == first.stopped_at
