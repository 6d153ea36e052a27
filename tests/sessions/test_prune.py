"""Retention: `manage.py prune_readings` removes exactly the old, unkept, finished sessions' rows (docs/retention.md)."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from sessions.models import IngestKey, RecordingSession
from sessions.recording.pipeline import SessionRecorder, readings_record
from sessions.services import session_complete, session_start
from tests.conftest import T0, bench_create, items

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
TABLES = ("recording_reading", "recording_readingrollup", "recording_validationresult")


def record(session: RecordingSession, batches: int, *, t0: float = T0) -> None:
    """`batches` batches of 30 fz readings (one over the error limit, so each batch opens an alert) and 10 temp."""
    recorder = SessionRecorder(session.pk)
    for b in range(batches):
        start = t0 + b * 2.0
        values = [10.0 + i % 7 for i in range(30)]
        values[5] = 95.0
        readings_record(recorder=recorder, items=items("fz", values, t0=start, step=0.05)
                        + items("temp", [20.0 + i for i in range(10)], t0=start, step=0.1))


def finished(rig_name: str, *, batches: int, ended_days_ago: float | None, status: str = "completed",
             keep: bool = False) -> int:
    """A session of a new external rig with its readings, ended `ended_days_ago` (None: never stopped)."""
    session = session_start(rig=bench_create(rig_name), name=rig_name)
    record(session, batches)
    session_complete(session_id=session.pk)
    ended = timezone.now() - timedelta(days=ended_days_ago or 0)
    RecordingSession.objects.filter(pk=session.pk).update(
        status=status, keep=keep, started_at=ended - timedelta(hours=1) if ended_days_ago is not None else ended,
        stopped_at=ended if ended_days_ago is not None else None,
    )
    return session.pk


def counts() -> dict[tuple[str, int], int]:
    """Rows per (table, session), counted straight from the tables."""
    found = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"SELECT session_id, count(*) FROM {table} GROUP BY session_id")
            found.update({(table, session_id): n for session_id, n in cursor.fetchall()})
    return found


def of(before: dict, sessions: set[int], table: str) -> int:
    return sum(n for (t, s), n in before.items() if t == table and s in sessions)


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_readings", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def lab(db):
    """Sessions of every kind; `old` ones are the ones a 30-day prune removes."""
    sessions = {
        "old": finished("old", batches=3, ended_days_ago=45),
        "old_failed": finished("old-failed", batches=2, ended_days_ago=31),
        "old_kept": finished("old-kept", batches=2, ended_days_ago=90, keep=True),
        "recent": finished("recent", batches=2, ended_days_ago=29),
        # Aborted before an older version set stopped_at: judged by its start.
        "old_aborted": finished("old-aborted", batches=1, ended_days_ago=None, status="aborted"),
    }
    RecordingSession.objects.filter(pk=sessions["old_aborted"]).update(started_at=timezone.now() - 60 * DAY)
    # Still recording though it started 40 days ago: never touched.
    recording = session_start(rig=bench_create("long-run"), name="long-run")
    record(recording, 2)
    RecordingSession.objects.filter(pk=recording.pk).update(started_at=timezone.now() - 40 * DAY)
    sessions["recording"] = recording.pk
    return sessions


def test_prune_removes_exactly_the_rows_of_old_unkept_finished_sessions(lab):
    before = counts()
    gone = {lab["old"], lab["old_failed"], lab["old_aborted"]}
    assert all(of(before, {s}, "recording_reading") > 0 for s in lab.values())
    assert all(of(before, {s}, "recording_validationresult") > 0 for s in lab.values())

    out = prune("--older-than", "30d")

    after = counts()
    assert after == {key: n for key, n in before.items() if key[1] not in gone}
    assert out.strip() == (
        f"removed: 3 sessions' data ({of(before, gone, 'recording_reading')} readings, "
        f"{of(before, gone, 'recording_readingrollup')} rollups, {of(before, gone, 'recording_validationresult')} "
        f"results); 0 expired idempotency keys"
    )


def test_a_pruned_session_keeps_its_row_counters_and_verdict_and_says_when_it_was_pruned(lab):
    old_before = RecordingSession.objects.get(pk=lab["old"])
    started = timezone.now()

    prune("--older-than", "30d")

    old = RecordingSession.objects.get(pk=lab["old"])
    assert (old.reading_count, old.alert_count, old.verdict, old.summary_stats) == (
        old_before.reading_count, old_before.alert_count, old_before.verdict, old_before.summary_stats
    )
    # ft6 recorded nothing: the verdict is error.
    assert (old.reading_count, old.verdict) == (3 * 40, "error")
    assert started <= old.pruned_at <= timezone.now()
    kept = RecordingSession.objects.filter(pruned_at__isnull=True).values_list("pk", flat=True)
    assert set(kept) == {lab["old_kept"], lab["recent"], lab["recording"]}


def test_a_second_prune_finds_nothing_left(lab):
    prune("--older-than", "30d")
    pruned_at = dict(RecordingSession.objects.values_list("pk", "pruned_at"))

    out = prune("--older-than", "30d")

    assert out.strip() == "removed: 0 sessions' data (0 readings, 0 rollups, 0 results); 0 expired idempotency keys"
    assert dict(RecordingSession.objects.values_list("pk", "pruned_at")) == pruned_at


def test_a_dry_run_counts_the_same_rows_and_deletes_nothing(lab):
    before = counts()
    gone = {lab["old"], lab["old_failed"], lab["old_aborted"]}

    out = prune("--older-than", "30d", "--dry-run")

    assert counts() == before
    assert not RecordingSession.objects.filter(pruned_at__isnull=False).exists()
    assert out.strip() == (
        f"would remove: 3 sessions' data ({of(before, gone, 'recording_reading')} readings, "
        f"{of(before, gone, 'recording_readingrollup')} rollups, {of(before, gone, 'recording_validationresult')} "
        f"results); 0 expired idempotency keys"
    )


def test_a_shorter_age_reaches_more_sessions_but_never_a_recording_or_kept_one(lab):
    before = counts()

    prune("--older-than", "12h")

    remaining = {session for _, session in counts()}
    assert remaining == {lab["old_kept"], lab["recording"]}
    assert counts() == {key: n for key, n in before.items() if key[1] in remaining}


def test_sessions_recorded_side_by_side_are_pruned_in_small_chunks_without_touching_each_other(db):
    """Two rigs recording at once interleave their reading ids: chunks by id range of one session
    must leave the other's rows in the same ranges alone."""
    old = session_start(rig=bench_create("a"), name="a")
    kept = session_start(rig=bench_create("b"), name="b")
    recorders = SessionRecorder(old.pk), SessionRecorder(kept.pk)
    for b in range(12):
        for recorder in recorders:
            readings_record(recorder=recorder, items=items("temp", [20.0 + i % 3 for i in range(25)], t0=T0 + b))
    for session in (old, kept):
        session_complete(session_id=session.pk)
    RecordingSession.objects.filter(pk__in=[old.pk, kept.pk]).update(stopped_at=timezone.now() - 40 * DAY)
    RecordingSession.objects.filter(pk=kept.pk).update(keep=True)
    before = counts()

    out = prune("--older-than", "30d", "--chunk", "7")

    assert counts() == {key: n for key, n in before.items() if key[1] != old.pk}
    assert f"({12 * 25} readings, {of(before, {old.pk}, 'recording_readingrollup')} rollups" in out


def test_prune_drops_expired_idempotency_keys_and_keeps_fresh_ones(lab):
    now = timezone.now()
    for i, age in enumerate([timedelta(hours=25), timedelta(days=3), timedelta(hours=23)]):
        IngestKey.objects.create(session_id=lab["recent"], key=f"k{i}", digest="0" * 64, status=201, answer={},
                                 created_at=now - age)

    out = prune("--older-than", "30d")

    assert "; 2 expired idempotency keys" in out
    assert list(IngestKey.objects.values_list("key", flat=True)) == ["k2"]


@pytest.mark.parametrize("age", ["30", "30x", "0d", "-1d", "d", "1.5d", "30 days", ""])
def test_a_bad_age_is_an_error_naming_the_option(db, age):
    with pytest.raises(CommandError, match="--older-than: expected a positive whole number"):
        prune(f"--older-than={age}")


@pytest.mark.parametrize(("age", "days"), [("30d", 30.0), ("12h", 0.5), ("90m", 1.5 / 24)])
def test_ages_in_days_hours_or_minutes(db, age, days):
    session_id = finished("edge", batches=1, ended_days_ago=days * 1.01)

    prune("--older-than", age)

    assert RecordingSession.objects.get(pk=session_id).pruned_at is not None


def test_a_chunk_below_one_is_an_error_naming_the_option(db):
    with pytest.raises(CommandError, match="--chunk: must be at least 1"):
        prune("--older-than", "30d", "--chunk", "0")


def test_an_admin_flags_a_session_keep_on_its_page_and_a_prune_then_spares_it(admin_client):
    session_id = finished("precious", batches=1, ended_days_ago=45)
    page = admin_client.get(f"/admin/recording/recordingsession/{session_id}/change/")
    assert b'name="keep"' in page.content
    results = list(RecordingSession.objects.get(pk=session_id).results.values_list("pk", flat=True))
    form = {"name": "precious", "description": "", "keep": "on", "results-TOTAL_FORMS": str(len(results)),
            "results-INITIAL_FORMS": str(len(results)), "results-MIN_NUM_FORMS": "0", "results-MAX_NUM_FORMS": "1000"}
    for i, pk in enumerate(results):
        form |= {f"results-{i}-id": str(pk), f"results-{i}-session": str(session_id)}

    saved = admin_client.post(f"/admin/recording/recordingsession/{session_id}/change/", form)

    assert saved.status_code == 302, saved.content.decode()[-2000:]
    before = counts()
    prune("--older-than", "30d")
    assert RecordingSession.objects.get(pk=session_id).keep
    assert counts() == before
    assert admin_client.get("/admin/recording/recordingsession/?keep__exact=1").context["cl"].result_count == 1
