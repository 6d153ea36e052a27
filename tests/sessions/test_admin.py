"""The admin site for review: sessions (no readings query), the CSV export action, acknowledging, engine rows."""

import csv
import io
import warnings

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from sessions.admin import CappedCountPaginator
from sessions.models import EngineHeartbeat, Reading, RecordingSession, ValidationResult
from tests.conftest import T0, ft6_value, readings

# transaction=True: on PostgreSQL the CSV export reads with its own connection (a COPY in a thread),
# which sees only committed rows; serialized_rollback keeps the migrations' `sim` rig and groups.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

READINGS_TABLE = f'"{Reading._meta.db_table}"'


def browser_for(django_user_model, username: str, *groups: str) -> Client:
    user = django_user_model.objects.create_user(username, password="secret-pass-1")
    user.groups.add(*Group.objects.filter(name__in=groups))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_client(django_user_model):
    """A browser logged in as a member of the admin group (staff through the group, not a superuser)."""
    return browser_for(django_user_model, "boss", "admin")


@pytest.fixture
def recorded(staff_client, ingest, start, bench):
    """Two completed bench sessions: the first with force readings and alerts, the second with objects."""
    first = start("bench", name="first run")["session_id"]
    assert ingest(first, readings("fz", [10.0, 90.0, 91.0, 10.0])).status_code == 201
    staff_client.post("/api/v1/sessions/stop", {"session_id": first}, format="json")
    second = start("bench", name="second run")["session_id"]
    batch = readings("temp", [20.5, 21.0], t0=T0 + 60) + readings("ft6", [ft6_value(1)], t0=T0 + 60.05)
    assert ingest(second, batch).status_code == 201
    staff_client.post("/api/v1/sessions/stop", {"session_id": second}, format="json")
    return [first, second]


def streamed(response) -> str:
    # The stream is an async generator; the sync test client consumes it whole (Django warns).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return b"".join(response).decode()


def test_the_sessions_list_shows_rig_status_verdict_duration_counts_and_links(admin_client, recorded):
    first = RecordingSession.objects.get(pk=recorded[0])

    response = admin_client.get("/admin/recording/recordingsession/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "RoboTest administration" in page
    for text in ("first run", "second run", "bench", "completed", first.verdict, "s</td>"):
        assert text in page
    assert f'href="/sessions/{first.pk}/"' in page
    for kind in ("csv", "json", "mcap"):
        assert f'href="/api/v1/sessions/{first.pk}/export/{kind}"' in page
    rows = response.context["cl"].result_list
    assert [(s.pk, s.reading_count, s.alert_count) for s in rows] == [
        (s.pk, Reading.objects.filter(session=s).count(), ValidationResult.objects.filter(session=s).count())
        for s in RecordingSession.objects.order_by("-started_at", "-id")
    ]


def test_the_sessions_list_never_queries_the_readings_table(admin_client, recorded):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/recording/recordingsession/", {"q": "run", "status": "completed"})

    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 2
    assert not [q["sql"] for q in queries if READINGS_TABLE in q["sql"]]


def test_the_readings_list_counts_no_further_than_its_cap(admin_client, recorded, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "CAP", 5)

    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/recording/reading/")

    assert response.status_code == 200
    assert Reading.objects.count() == 7
    assert response.context["cl"].result_count == 5
    counts = [q["sql"] for q in queries if READINGS_TABLE in q["sql"] and "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT 5" in sql for sql in counts)


def test_the_sessions_list_finds_a_session_by_its_id(admin_client, recorded):
    response = admin_client.get("/admin/recording/recordingsession/", {"q": str(recorded[1])})

    assert [s.pk for s in response.context["cl"].result_list] == [recorded[1]]


def test_a_session_page_shows_its_results_and_links_to_its_review(admin_client, recorded):
    response = admin_client.get(f"/admin/recording/recordingsession/{recorded[0]}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "force_threshold" in page and "force_spike" in page
    assert f'href="/sessions/{recorded[0]}/"' in page
    assert f'href="/api/v1/sessions/{recorded[0]}/export/mcap"' in page
    assert "<li>fz: 4 readings, min 10, max 91, mean 50.25 N</li>" in page
    assert "<li>force_threshold (force, range): warning_high 64.0, error_high 80.0</li>" in page


def test_the_delete_confirmation_counts_from_the_session_without_loading_its_readings(admin_client, recorded):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.post(
            "/admin/recording/recordingsession/", {"action": "delete_selected", "_selected_action": recorded}
        )

    assert response.status_code == 200
    assert not [q["sql"] for q in queries if READINGS_TABLE in q["sql"]]
    assert "4 readings, 2 validation results" in response.content.decode()

    response = admin_client.post(
        "/admin/recording/recordingsession/",
        {"action": "delete_selected", "_selected_action": recorded, "post": "yes"},
    )

    assert response.status_code == 302
    assert not RecordingSession.objects.exists() and not Reading.objects.exists()


def test_a_recording_session_cannot_be_deleted_here(admin_client, start, bench):
    session_id = start("bench")["session_id"]

    response = admin_client.post(
        "/admin/recording/recordingsession/",
        {"action": "delete_selected", "_selected_action": [session_id], "post": "yes"},
    )

    assert "stop it first" in response.content.decode()
    assert RecordingSession.objects.filter(pk=session_id).exists()


def test_the_export_action_streams_the_selected_sessions_as_one_csv(admin_client, recorded, bench):
    response = admin_client.post(
        "/admin/recording/recordingsession/", {"action": "export_csv", "_selected_action": recorded}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert f"robotest-sessions-{recorded[0]}-{recorded[1]}.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(streamed(response))))
    assert rows[0] == ["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]
    body = rows[1:]
    expected = [
        (str(r.session_id), r.sensor.name, r.timestamp.timestamp())
        for r in Reading.objects.select_related("sensor").order_by("session__started_at", "timestamp", "id")
    ]
    assert len(body) == 7 == len(expected)
    assert [(row[5], row[6], float(row[0])) for row in body] == expected
    assert [float(row[2]) for row in body[:4]] == [10.0, 90.0, 91.0, 10.0]


def test_the_export_action_of_one_session_equals_the_api_download(admin_client, staff_client, recorded):
    response = admin_client.post(
        "/admin/recording/recordingsession/", {"action": "export_csv", "_selected_action": [recorded[1]]}
    )
    api = staff_client.get(f"/api/v1/sessions/{recorded[1]}/export/csv")

    assert streamed(response) == streamed(api)


def test_the_acknowledge_action_records_who_and_when_and_keeps_a_first_acknowledgement(
    admin_client, django_user_model, recorded
):
    results = list(ValidationResult.objects.filter(session_id=recorded[0]).order_by("pk"))
    first = django_user_model.objects.create_user("first")
    earlier = timezone.now() - timezone.timedelta(hours=1)
    ValidationResult.objects.filter(pk=results[1].pk).update(acknowledged_by=first, acknowledged_at=earlier)
    before = timezone.now()

    response = admin_client.post(
        "/admin/recording/validationresult/",
        {"action": "acknowledge", "_selected_action": [r.pk for r in results]},
        follow=True,
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Acknowledged 1 result." in page and f"left as they were: {results[1].pk}" in page
    fresh, kept = (ValidationResult.objects.select_related("acknowledged_by").get(pk=r.pk) for r in results)
    assert fresh.acknowledged_by.username == "boss"
    assert before <= fresh.acknowledged_at <= timezone.now()
    assert (kept.acknowledged_by.username, kept.acknowledged_at) == ("first", earlier)


def test_results_are_read_only_in_the_admin(admin_client, recorded):
    result = ValidationResult.objects.filter(session_id=recorded[0]).first()

    page = admin_client.get(f"/admin/recording/validationresult/{result.pk}/change/")
    admin_client.post(f"/admin/recording/validationresult/{result.pk}/change/", {"rule": "renamed", "count": 99})

    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert ValidationResult.objects.get(pk=result.pk).rule == result.rule


def test_engine_heartbeats_are_read_only(admin_client):
    beat = EngineHeartbeat.objects.create(name="engine-1", pid=42, beat_at=timezone.now(), sessions=1)

    listing = admin_client.get("/admin/recording/engineheartbeat/")
    page = admin_client.get(f"/admin/recording/engineheartbeat/{beat.pk}/change/")
    edit = admin_client.post(
        f"/admin/recording/engineheartbeat/{beat.pk}/change/", {"name": "x", "pid": 1, "sessions": 9}
    )
    add = admin_client.get("/admin/recording/engineheartbeat/add/")
    delete = admin_client.post(f"/admin/recording/engineheartbeat/{beat.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200 and b"engine-1" in listing.content
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert (edit.status_code, add.status_code, delete.status_code) == (403, 403, 403)
    assert EngineHeartbeat.objects.get(pk=beat.pk).sessions == 1


@pytest.mark.parametrize("groups", [("viewer",), ("operator",), ()], ids=["viewer", "operator", "groupless"])
def test_only_the_admin_role_enters_the_admin_site(django_user_model, groups):
    response = browser_for(django_user_model, "someone", *groups).get("/admin/recording/recordingsession/")

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_view_site_leads_to_the_dashboard(admin_client):
    assert b'href="/"' in admin_client.get("/admin/").content
