"""CSV export: `GET /api/v1/sessions/export/csv?session=` and `/api/v1/sessions/{id}/export/csv`."""

import csv
import io
import json
import warnings
from datetime import datetime

import pytest

from sessions.models import RecordingSession
from tests.conftest import T0, ft6_value, readings

# transaction=True: on PostgreSQL the export is read by its own connection (a COPY in a thread),
# which sees only committed rows; serialized_rollback keeps the migration's `sim` rig.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

COLUMNS = ["timestamp", "sensor_type", "value", "datetime", "session_time", "session_id", "sensor"]


def content(response) -> str:
    # The stream is an async generator; the sync test client consumes it whole (Django warns).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return b"".join(response).decode()


def table(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content(response))))


@pytest.fixture
def recorded(ingest, bench_session):
    batch = readings("fz", [10.5, 11, 95.25]) + readings("ft6", [ft6_value(3)], t0=T0 + 0.05)
    assert ingest(bench_session, batch).status_code == 201
    return bench_session


def test_csv_has_exactly_the_seed_columns_and_one_row_per_reading(staff_client, recorded):
    response = staff_client.get("/api/v1/sessions/export/csv", {"session": recorded})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = table(response)
    assert rows[0] == COLUMNS
    assert len(rows) == 1 + 4


def test_csv_rows_equal_the_readings(staff_client, recorded):
    started = RecordingSession.objects.get(pk=recorded).started_at.timestamp()
    api_rows = staff_client.get(f"/api/v1/sessions/{recorded}/readings/").json()

    rows = [dict(zip(COLUMNS, row)) for row in table(staff_client.get(f"/api/v1/sessions/{recorded}/export/csv"))[1:]]

    assert len(rows) == len(api_rows)
    for row, reading in zip(rows, api_rows):
        assert float(row["timestamp"]) == reading["timestamp"]
        assert row["sensor_type"] == reading["sensor_type"]
        assert json.loads(row["value"]) == reading["value"]
        assert datetime.fromisoformat(row["datetime"]).timestamp() == reading["timestamp"]
        assert float(row["session_time"]) == pytest.approx(reading["timestamp"] - started, abs=1e-6)
        assert int(row["session_id"]) == recorded
        assert row["sensor"] == reading["sensor"]
    assert [row["sensor"] for row in rows] == ["fz", "ft6", "fz", "fz"]


def test_csv_writes_object_values_as_json(staff_client, recorded):
    rows = table(staff_client.get(f"/api/v1/sessions/{recorded}/export/csv"))

    ft6 = next(row for row in rows if row[-1] == "ft6")
    assert json.loads(ft6[2]) == ft6_value(3)


def test_csv_names_the_session_in_its_filename(staff_client, recorded):
    response = staff_client.get(f"/api/v1/sessions/{recorded}/export/csv")

    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert f'filename="robotest-session-{recorded}-bench.csv"' in disposition


def test_csv_by_query_and_by_path_are_the_same(staff_client, recorded):
    by_query = content(staff_client.get("/api/v1/sessions/export/csv", {"session": recorded}))
    by_path = content(staff_client.get(f"/api/v1/sessions/{recorded}/export/csv"))

    assert by_query == by_path


def test_csv_defaults_to_the_most_recently_started_session(staff_client, recorded, start, sim_rig):
    newest = start()["session_id"]

    response = staff_client.get("/api/v1/sessions/export/csv")

    assert response.status_code == 200
    assert f"robotest-session-{newest}-sim.csv" in response["Content-Disposition"]
    assert table(response) == [COLUMNS]


def test_csv_of_a_completed_session_still_exports(staff_client, recorded):
    staff_client.post("/api/v1/sessions/stop", {"session_id": recorded}, format="json")

    assert len(table(staff_client.get("/api/v1/sessions/export/csv", {"session": recorded}))) == 5


def test_csv_with_no_session_at_all_is_a_404_with_a_message(staff_client, sim_rig):
    response = staff_client.get("/api/v1/sessions/export/csv")

    assert response.status_code == 404
    assert "session" in response.json()["detail"]


def test_csv_of_an_unknown_session_is_a_404(staff_client, recorded):
    for response in (
        staff_client.get("/api/v1/sessions/export/csv", {"session": 99999}),
        staff_client.get("/api/v1/sessions/99999/export/csv"),
    ):
        assert response.status_code == 404
        assert "99999" in response.json()["detail"]


@pytest.mark.parametrize("session", ["abc", "0", "-1", "1.5"])
def test_csv_with_a_bad_session_is_a_400_naming_it(staff_client, recorded, session):
    response = staff_client.get("/api/v1/sessions/export/csv", {"session": session})

    assert response.status_code == 400
    assert "session" in response.json()["detail"]


def test_csv_needs_credentials(anon_client, recorded):
    assert anon_client.get(f"/api/v1/sessions/{recorded}/export/csv").status_code in (401, 403)


def test_csv_is_public_with_robotest_public_read(anon_client, recorded, settings):
    settings.ROBOTEST_PUBLIC_READ = True

    assert len(table(anon_client.get(f"/api/v1/sessions/{recorded}/export/csv"))) == 5
