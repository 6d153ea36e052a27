"""`/metrics` (robotest_site/observability/metrics.py, cluster.py; the view in robotest_site/views.py)."""

import ipaddress
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from robotest_site.observability import metrics
from sessions.engine import Engine
from sessions.models import EngineHeartbeat, RecordingSession
from sessions.recording.pipeline import SessionRecorder, readings_record
from tests.conftest import T0, items, readings

pytestmark = pytest.mark.django_db


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parsed(text: str) -> dict[tuple[str, tuple], float]:
    """An exposition parsed by prometheus_client's own parser: {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scraped(response) -> dict[tuple[str, tuple], float]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parsed(response.content.decode())


# --- who may scrape --------------------------------------------------------------------------


def test_metrics_answers_the_loopback_address(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_metrics_refuses_another_address_with_a_json_403_naming_the_settings(client):
    response = client.get("/metrics", REMOTE_ADDR="10.1.2.3")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    detail = response.json()["detail"]
    assert "ROBOTEST_METRICS_ALLOW" in detail and "ROBOTEST_METRICS_TOKEN" in detail
    assert b"robotest_" not in response.content


def test_metrics_answers_a_configured_network_and_its_ipv4_mapped_form(client, settings):
    settings.ROBOTEST_METRICS_ALLOW = [*settings.ROBOTEST_METRICS_ALLOW, ipaddress.ip_network("10.0.0.0/8")]

    assert client.get("/metrics", REMOTE_ADDR="10.200.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.200.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="11.0.0.1").status_code == 403


def test_metrics_answers_the_bearer_token_from_anywhere_and_refuses_a_wrong_one(client, settings):
    settings.ROBOTEST_METRICS_TOKEN = "s3cret-token"

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-tokeN").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Token s3cret-token").status_code == 403


def test_no_token_configured_means_no_token_opens_it(client, settings):
    settings.ROBOTEST_METRICS_TOKEN = None

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer ").status_code == 403


# --- what the pipeline counts ----------------------------------------------------------------


def test_an_ingested_batch_counts_its_readings_once_and_one_flush(
    ingest, bench_session, client, django_capture_on_commit_callbacks
):
    before = scraped(client.get("/metrics"))
    stored_before = before[("robotest_readings_stored_total", (("source", "ingest"),))]
    flushes_before = before[("robotest_flush_seconds_count", (("source", "ingest"),))]

    # The test's transaction never commits: run what each request's commit would.
    with django_capture_on_commit_callbacks(execute=True):
        assert ingest(bench_session, readings("fz", [1.0, 2.0, 3.0])).status_code == 201
        assert ingest(bench_session, readings("temp", [20.0, 21.0], t0=T0 + 5)).status_code == 201

    after = scraped(client.get("/metrics"))
    stored = RecordingSession.objects.get(pk=bench_session).reading_count
    assert stored == 5
    assert after[("robotest_readings_stored_total", (("source", "ingest"),))] - stored_before == stored
    assert after[("robotest_flush_seconds_count", (("source", "ingest"),))] - flushes_before == 2
    # Batch sizes 3 and 2: both at or under the 5 bucket, neither at or under 1.
    assert after[("robotest_flush_batch_readings_bucket", (("le", "5.0"), ("source", "ingest")))] - before[
        ("robotest_flush_batch_readings_bucket", (("le", "5.0"), ("source", "ingest")))] == 2
    assert after[("robotest_flush_batch_readings_sum", (("source", "ingest"),))] - before[
        ("robotest_flush_batch_readings_sum", (("source", "ingest"),))] == 5


def test_a_refused_batch_counts_nothing(bench_session):
    RecordingSession.objects.filter(pk=bench_session).update(status=RecordingSession.Status.COMPLETED)
    before = sample("robotest_readings_stored_total", source="simulator")
    flushes = sample("robotest_flush_seconds_count", source="simulator")

    with pytest.raises(Exception, match="not recording"):
        readings_record(recorder=SessionRecorder(bench_session), items=items("fz", [1.0]), source="simulator")

    assert sample("robotest_readings_stored_total", source="simulator") == before
    assert sample("robotest_flush_seconds_count", source="simulator") == flushes


def test_the_engine_buffer_gauge_reads_the_runners_pending_readings():
    class Runner:
        def __init__(self, n):
            self.pending = [None] * n

    engine = Engine(layer=object())
    try:
        engine.runners = {1: Runner(3), 2: Runner(40)}
        assert sample("robotest_engine_buffer_readings") == 43
        engine.runners[2].pending = []
        assert sample("robotest_engine_buffer_readings") == 3
    finally:
        engine._db.shutdown()
        engine._control.shutdown()


# --- HTTP latency by view ---------------------------------------------------------------------


def test_request_latency_is_labelled_by_the_url_name_not_the_path(staff_client, bench_session, client):
    labels = {"view": "session-detail", "method": "GET", "status": "2xx"}
    before = sample("robotest_http_request_duration_seconds_count", **labels)

    assert staff_client.get(f"/api/v1/sessions/{bench_session}/").status_code == 200
    assert staff_client.get("/api/v1/sessions/999999/").status_code == 404
    client.get("/no/such/path/123")

    assert sample("robotest_http_request_duration_seconds_count", **labels) == before + 1
    assert sample("robotest_http_request_duration_seconds_count", view="session-detail", method="GET", status="4xx") >= 1
    assert sample("robotest_http_request_duration_seconds_count", view="unmatched", method="GET", status="4xx") >= 1
    views = {dict(labels).get("view") for _, labels in scraped(client.get("/metrics"))} - {None}
    assert {"session-detail", "unmatched"} <= views
    assert not [v for v in views if "/" in v or "999999" in v or str(bench_session) == v], views


# --- the installation's gauges, from the database --------------------------------------------


def test_sessions_recording_and_heartbeat_ages_come_from_the_database(client, bench_session, sim_rig, start):
    start(sim_rig.name)
    EngineHeartbeat.objects.create(name="w1:1", pid=1, beat_at=timezone.now() - timedelta(seconds=12), sessions=1)
    EngineHeartbeat.objects.create(name="w2:2", pid=2, beat_at=timezone.now(), sessions=0)

    got = scraped(client.get("/metrics"))

    expected = {
        source: RecordingSession.objects.filter(status="recording", rig__source=source).count()
        for source in ("simulated", "external")
    }
    assert expected == {"simulated": 1, "external": 1}
    for source, n in expected.items():
        assert got[("robotest_sessions_recording", (("source", source),))] == n
    assert 12 <= got[("robotest_worker_heartbeat_age_seconds", (("worker", "w1:1"),))] < 14
    assert 0 <= got[("robotest_worker_heartbeat_age_seconds", (("worker", "w2:2"),))] < 2
    assert got[("robotest_cluster_scrape_failed", ())] == 0


def test_every_documented_metric_is_exposed(client):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    names = {family.name for family in text_string_to_metric_families(client.get("/metrics").content.decode())}
    for name in (
        "robotest_readings_stored", "robotest_flush_seconds", "robotest_flush_batch_readings",
        "robotest_engine_buffer_readings", "robotest_readings_lost", "robotest_live_readings_lost",
        "robotest_live_frames_sent", "robotest_live_frames_dropped", "robotest_live_clients",
        "robotest_sessions_recording", "robotest_http_request_duration_seconds",
        "robotest_worker_heartbeat_age_seconds",
    ):
        assert name in names, name
        assert f"`{name}" in doc, f"docs/operations.md does not describe {name}"


def test_a_hot_path_call_costs_microseconds():
    # The pipeline pays flush_done once per batch: it must stay far below a flush (milliseconds).
    started = time.perf_counter()
    for _ in range(10_000):
        metrics.flush_done("simulator", 100, 0.01)
    per_call = (time.perf_counter() - started) / 10_000
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per flush_done"


def test_a_batch_its_callers_transaction_rolls_back_is_not_counted(bench_session, client, django_capture_on_commit_callbacks):
    """As a keyed ingest batch whose key loses a race: stored in a savepoint, then rolled back with it."""
    from django.db import transaction

    key = ("robotest_readings_stored_total", (("source", "ingest"),))
    before = scraped(client.get("/metrics")).get(key, 0.0)

    class Abandon(Exception):
        pass

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Abandon), transaction.atomic():
            readings_record(recorder=SessionRecorder(session_id=bench_session), items=items("fz", [1.0, 2.0]))
            raise Abandon

    assert callbacks == []
    assert RecordingSession.objects.get(pk=bench_session).reading_count == 0
    assert scraped(client.get("/metrics")).get(key, 0.0) == before
