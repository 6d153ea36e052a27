"""Production mode end to end: daphne + run_simulators + Redis + PostgreSQL record one session.

The module records one session of about three seconds through real processes; each test checks
one promise about it, and the last one restarts daphne.
"""

import time
from dataclasses import dataclass
from datetime import datetime

import pytest

from tests.e2e.harness import (
    RATES,
    Row,
    assert_exports_agree,
    assert_seq_contiguous,
    assert_summary_counts,
    by_sensor,
    schedule_steps,
)

pytestmark = pytest.mark.e2e

RECORD_SECONDS = 3.0
# Small pages, so that ~500 readings take several: the Link header is followed for real.
PAGE = 100


@dataclass
class Recording:
    started: dict
    summary: dict
    rows: list[Row]
    api_readings: list[dict]
    pages: int
    csv_rows: list[dict]
    one_page: list[dict]


@pytest.fixture(scope="module")
def recording(production) -> Recording:
    api = production.start_web()
    worker = production.start_worker()
    production.wait_worker_up(worker)
    started = api.start(name="e2e production", description="daphne + run_simulators")
    time.sleep(RECORD_SECONDS)
    summary = api.stop(started["session_id"])
    session_id = started["session_id"]
    readings, pages = api.readings(session_id, limit=PAGE)
    # MAX_DATA_POINTS is the default 10,000: one read of the largest limit holds the whole session.
    one_page, one = api.readings(session_id, limit=10_000)
    assert one == 1
    return Recording(
        started=started,
        summary=summary,
        rows=production.db.readings(session_id),
        api_readings=readings,
        pages=pages,
        csv_rows=api.csv_rows(session_id),
        one_page=one_page,
    )


def test_start_answers_201_with_a_recording_session(recording):
    started = recording.started
    assert started["status"] == "recording"
    assert isinstance(started["session_id"], int)
    assert datetime.fromisoformat(started["started_at"]).tzinfo is not None
    assert started["data_points"] == 0


def test_stop_returns_the_started_session_id(recording):
    assert recording.summary["session_id"] == recording.started["session_id"]
    assert recording.summary["status"] == "completed"
    # Both instants are the server's: the client slept RECORD_SECONDS in between.
    assert recording.summary["session_duration"] >= RECORD_SECONDS


def test_per_sensor_counts_match_the_rates_and_the_database(recording):
    assert_summary_counts(recording.summary, recording.rows)


def test_stop_stores_every_reading_up_to_the_stop_instant(recording):
    summary = recording.summary
    started = datetime.fromisoformat(summary["started_at"]).timestamp()
    stopped = datetime.fromisoformat(summary["stopped_at"]).timestamp()
    assert_seq_contiguous(recording.rows, summary["total_readings"])
    for sensor, rows in by_sensor(recording.rows).items():
        period = 1.0 / RATES[sensor]
        assert set(schedule_steps(rows, RATES[sensor])) == {1}, f"{sensor}: a hole in the recording"
        assert abs(rows[0].timestamp - started) < 1e-5, f"{sensor}: the first sample is not at the start"
        # Nothing before the stop instant is missing, and nothing after it is stored (the worker
        # hears of the stop a few ms late, and leaves out what it generated meanwhile).
        assert stopped - period - 1e-5 <= rows[-1].timestamp <= stopped + 1e-6, (
            f"{sensor}: last reading at {rows[-1].timestamp}, stop at {stopped}"
        )


def test_database_readings_endpoint_and_csv_agree_row_for_row(recording):
    assert recording.pages > 1
    assert_exports_agree(recording.started["session_id"], recording.rows, recording.api_readings, recording.csv_rows)
    assert recording.one_page == recording.api_readings


def test_the_session_survives_a_daphne_restart(recording, production):
    production.web.stop()
    api = production.start_web()
    response = api.get(f"/api/v1/sessions/{recording.started['session_id']}/")
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["status"] == "completed"
    assert session["reading_count"] == recording.summary["total_readings"]
    assert session["verdict"] == recording.summary["verdict"]
    assert session["summary_stats"] == recording.summary["summary_stats"]
