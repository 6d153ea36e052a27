"""Validation results: `/api/v1/results/` (with acknowledge) and the seed's `/api/v1/sensors/validation`."""

import pytest

from sessions.models import ValidationResult
from tests.conftest import T0, assert_named, readings

pytestmark = pytest.mark.django_db

# The fields of a result (docs/websocket.md, `validation`; the seed's /api/v1/sensors/validation).
CONTRACT_FIELDS = {
    "id", "sensor_type", "sensor", "status", "message", "timestamp", "details", "first_timestamp",
    "last_timestamp", "count", "peak", "acknowledged",
}


@pytest.fixture
def alerts(staff_client, ingest, bench_session):
    """A completed session with an error run (fz above 80 twice) and a spike warning run."""
    response = ingest(bench_session, readings("fz", [10.0, 90.0, 91.0, 10.0]))
    assert response.status_code == 201
    staff_client.post("/api/v1/sessions/stop", {"session_id": bench_session}, format="json")
    return bench_session


@pytest.fixture
def open_alert(start, ingest, alerts):
    """A second, recording session of the bench whose force stays above 80: an open result."""
    session_id = start("bench")["session_id"]
    assert ingest(session_id, readings("fz", [95.0, 96.0], t0=T0 + 100)).status_code == 201
    return session_id


def by_rule(rows: list[dict]) -> dict[str, dict]:
    return {row["rule"]: row for row in rows}


def test_results_list_is_paged_and_has_the_contract_fields(staff_client, alerts):
    response = staff_client.get("/api/v1/results/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2
    error = by_rule(body["results"])["force_threshold"]
    assert CONTRACT_FIELDS <= set(error)
    assert (error["sensor"], error["sensor_type"], error["status"]) == ("fz", "force", "error")
    assert (error["count"], error["peak"], error["session_id"]) == (2, 91.0, alerts)
    assert (error["first_timestamp"], error["last_timestamp"], error["timestamp"]) == (T0 + 0.1, T0 + 0.2, T0 + 0.2)
    assert error["open"] is False
    assert error["details"]["error_high"] == 80.0
    assert "91" in error["message"]
    assert (error["acknowledged"], error["acknowledged_by"], error["acknowledged_at"]) == (False, None, None)


def test_a_result_has_the_shape_the_ingest_answer_gave_it(staff_client, ingest, bench_session):
    sent = ingest(bench_session, readings("fz", [95.0])).json()["validation"][0]

    got = staff_client.get(f"/api/v1/results/{sent['id']}/").json()

    assert {k: got[k] for k in sent} == sent


def test_results_newest_first(staff_client, open_alert, alerts):
    rows = staff_client.get("/api/v1/results/").json()["results"]

    assert rows[0]["session_id"] == open_alert
    assert [r["last_timestamp"] for r in rows] == sorted((r["last_timestamp"] for r in rows), reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=error", {("force_threshold", "old"), ("force_threshold", "new")}),
        ("status=warning", {("force_spike", "old")}),
        ("rule=force_spike", {("force_spike", "old")}),
        ("rule=nobody_has_this", set()),
        ("is_open=true", {("force_threshold", "new")}),
        ("is_open=false", {("force_threshold", "old"), ("force_spike", "old")}),
        ("sensor=fz&status=warning", {("force_spike", "old")}),
        ("sensor=temp", set()),
    ],
)
def test_results_filters(staff_client, alerts, open_alert, query, expected):
    names = {alerts: "old", open_alert: "new"}

    rows = staff_client.get(f"/api/v1/results/?{query}").json()["results"]

    assert {(r["rule"], names[r["session_id"]]) for r in rows} == expected


def test_results_filter_by_session(staff_client, alerts, open_alert):
    rows = staff_client.get(f"/api/v1/results/?session={open_alert}").json()["results"]

    assert [(r["rule"], r["session_id"]) for r in rows] == [("force_threshold", open_alert)]


def test_results_ordering_and_paging(staff_client, alerts, open_alert):
    first = staff_client.get("/api/v1/results/?ordering=-peak&page_size=2").json()
    second = staff_client.get(first["next"]).json()

    peaks = [r["peak"] for r in first["results"] + second["results"]]
    assert first["count"] == 3 and len(first["results"]) == 2 and second["next"] is None
    assert peaks == sorted(peaks, reverse=True)


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("session=abc", "session"),
        ("session=0", "session"),
        ("session=99999999999999999999999", "session"),
        ("status=fatal", "status"),
        ("is_open=maybe", "is_open"),
        ("acknowledged=yes please", "acknowledged"),
        ("acknowledged=50%25s", "acknowledged"),
        ("ordering=colour", "ordering"),
        ("page_size=0", "page_size"),
        ("page=abc", "page"),
    ],
)
def test_a_bad_results_filter_is_a_400_naming_it(staff_client, alerts, query, name):
    response = staff_client.get(f"/api/v1/results/?{query}")

    assert_named(response, 400, name)


@pytest.mark.parametrize(("query", "name"), [("session=99999", "session"), ("sensor=nope", "sensor")])
def test_a_results_filter_naming_nothing_is_a_404(staff_client, alerts, query, name):
    response = staff_client.get(f"/api/v1/results/?{query}")

    assert_named(response, 404, name)


def test_an_unknown_result_is_a_404(staff_client, alerts):
    for path in ("/api/v1/results/99999/", "/api/v1/results/abc/", "/api/v1/results/99999999999999999999999/"):
        response = staff_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]


# --- acknowledge -----------------------------------------------------------------------------


def error_id(session_id: int) -> int:
    return ValidationResult.objects.get(session_id=session_id, rule="force_threshold").pk


def test_any_user_may_acknowledge_a_result(plain_client, alerts):
    pk = error_id(alerts)

    response = plain_client.post(f"/api/v1/results/{pk}/acknowledge/", {"comment": "gripper recalibrated"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["acknowledged"], body["acknowledged_by"]) == (pk, True, "viewer")
    assert body["acknowledge_comment"] == "gripper recalibrated"
    assert body["acknowledged_at"] > T0
    stored = ValidationResult.objects.get(pk=pk)
    assert stored.acknowledged_by.username == "viewer" and stored.acknowledge_comment == "gripper recalibrated"


def test_acknowledge_without_a_comment(staff_client, alerts):
    response = staff_client.post(f"/api/v1/results/{error_id(alerts)}/acknowledge/")

    assert response.status_code == 200
    assert response.json()["acknowledged_by"] == "operator"
    assert response.json()["acknowledge_comment"] == ""


def test_acknowledging_twice_is_a_409_and_the_first_stands(staff_client, plain_client, alerts):
    pk = error_id(alerts)
    plain_client.post(f"/api/v1/results/{pk}/acknowledge/", {"comment": "first"}, format="json")

    response = staff_client.post(f"/api/v1/results/{pk}/acknowledge/", {"comment": "second"}, format="json")

    assert response.status_code == 409
    assert "viewer" in response.json()["detail"]
    assert response.json()["result"]["acknowledge_comment"] == "first"
    assert ValidationResult.objects.get(pk=pk).acknowledge_comment == "first"


def test_acknowledged_filter(staff_client, alerts):
    pk = error_id(alerts)
    staff_client.post(f"/api/v1/results/{pk}/acknowledge/")

    acked = staff_client.get("/api/v1/results/?acknowledged=true").json()["results"]
    not_acked = staff_client.get("/api/v1/results/?acknowledged=false").json()["results"]

    assert [r["id"] for r in acked] == [pk]
    assert [r["rule"] for r in not_acked] == ["force_spike"]


def test_acknowledging_an_open_result_keeps_it_growing(staff_client, ingest, open_alert):
    pk = error_id(open_alert)
    staff_client.post(f"/api/v1/results/{pk}/acknowledge/", {"comment": "known"}, format="json")

    ingest(open_alert, readings("fz", [97.0], t0=T0 + 200))

    result = staff_client.get(f"/api/v1/results/{pk}/").json()
    assert (result["count"], result["peak"], result["acknowledge_comment"]) == (3, 97.0, "known")


def test_anonymous_cannot_acknowledge_even_with_public_reads(anon_client, alerts, settings):
    settings.ROBOTEST_PUBLIC_READ = True
    pk = error_id(alerts)

    assert anon_client.post(f"/api/v1/results/{pk}/acknowledge/", {"comment": "x"}, format="json").status_code in (401, 403)
    assert ValidationResult.objects.get(pk=pk).acknowledged_at is None


@pytest.mark.parametrize(("body", "name"), [({"comment": "x" * 2001}, "comment"), ({"comment": ["a"]}, "comment")])
def test_a_bad_acknowledge_body_is_a_400_naming_it(staff_client, alerts, body, name):
    pk = error_id(alerts)

    response = staff_client.post(f"/api/v1/results/{pk}/acknowledge/", body, format="json")

    assert_named(response, 400, name)
    assert ValidationResult.objects.get(pk=pk).acknowledged_at is None


def test_acknowledging_an_unknown_result_is_a_404(staff_client, alerts):
    assert staff_client.post("/api/v1/results/99999/acknowledge/").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_results_are_read_only_apart_from_acknowledge(staff_client, alerts, method):
    path = "/api/v1/results/" if method == "post" else f"/api/v1/results/{error_id(alerts)}/"

    assert getattr(staff_client, method)(path, {}, format="json").status_code == 405


def test_results_need_a_user_unless_reads_are_public(anon_client, alerts, settings):
    assert anon_client.get("/api/v1/results/").status_code in (401, 403)
    assert anon_client.get("/api/v1/sensors/validation").status_code in (401, 403)

    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.get("/api/v1/results/").json()["count"] == 2
    assert len(anon_client.get("/api/v1/sensors/validation").json()) == 2


# --- the seed's /api/v1/sensors/validation ----------------------------------------------------


def test_validation_is_a_plain_list_newest_first_in_the_results_shape(staff_client, alerts, open_alert):
    rows = staff_client.get("/api/v1/sensors/validation").json()

    assert isinstance(rows, list) and len(rows) == 3
    assert rows[0]["session_id"] == open_alert
    assert [r["last_timestamp"] for r in rows] == sorted((r["last_timestamp"] for r in rows), reverse=True)
    assert rows == [staff_client.get(f"/api/v1/results/{r['id']}/").json() for r in rows]


@pytest.mark.parametrize(
    ("query", "rules"),
    [
        ("limit=1", ["force_threshold"]),
        ("status=warning", ["force_spike"]),
        ("sensor=fz&status=error", ["force_threshold", "force_threshold"]),
        ("sensor=temp", []),
    ],
)
def test_validation_filters(staff_client, alerts, open_alert, query, rules):
    rows = staff_client.get(f"/api/v1/sensors/validation?{query}").json()

    assert [r["rule"] for r in rows] == rules


def test_validation_filter_by_session(staff_client, alerts, open_alert):
    rows = staff_client.get(f"/api/v1/sensors/validation?session={alerts}").json()

    assert {r["rule"] for r in rows} == {"force_threshold", "force_spike"}
    assert {r["session_id"] for r in rows} == {alerts}


def test_validation_limit_defaults_to_50(staff_client, ingest, bench_session):
    # 60 separate runs: a violation, then a reading that closes it.
    ingest(bench_session, readings("fz", [95.0, 10.0] * 60, step=10.0))

    assert len(staff_client.get("/api/v1/sensors/validation?status=error").json()) == 50
    assert len(staff_client.get("/api/v1/sensors/validation?status=error&limit=200").json()) == 60


@pytest.mark.parametrize(
    ("query", "name", "code"),
    [
        ("limit=0", "limit", 400),
        ("limit=201", "limit", 400),
        ("limit=abc", "limit", 400),
        ("session=abc", "session", 400),
        ("status=fatal", "status", 400),
        ("session=99999", "session", 404),
        ("sensor=nope", "sensor", 404),
    ],
)
def test_a_bad_validation_parameter_is_named(staff_client, alerts, query, name, code):
    response = staff_client.get(f"/api/v1/sensors/validation?{query}")

    assert_named(response, code, name)


def test_validation_sensor_of_another_rig_in_the_session_is_a_404(staff_client, alerts, sim_rig):
    response = staff_client.get(f"/api/v1/sensors/validation?session={alerts}&sensor=motor")

    assert response.status_code == 404
