"""The rules resource: `/api/v1/rules/`, edited by staff, validated before the database sees it."""

import pytest

from sensors.models import Sensor, ValidationRule
from tests.conftest import T0, assert_named, readings

pytestmark = pytest.mark.django_db

TOO_HOT = {"code": "too_hot", "sensor_type": "temperature", "warning_high": 50.0, "error_high": 70.0}


def fz_id() -> int:
    return Sensor.objects.get(rig__name="bench", name="fz").pk


def test_staff_create_a_rule(staff_client, bench):
    response = staff_client.post("/api/v1/rules/", TOO_HOT, format="json")

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in TOO_HOT} == TOO_HOT
    assert (body["kind"], body["enabled"], body["sensor"], body["field"]) == ("range", True, None, "")
    assert ValidationRule.objects.get(pk=body["id"]).error_high == 70.0


def test_a_rule_for_one_sensor_names_its_sensor_and_rig(staff_client, bench):
    response = staff_client.post(
        "/api/v1/rules/", {"code": "fz_limit", "sensor": fz_id(), "error_high": 40.0}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["sensor"], response.json()["sensor_name"], response.json()["rig"]) == (fz_id(), "fz", "bench")
    assert response.json()["sensor_type"] == ""


def test_a_delta_rule_on_a_field(staff_client, bench):
    body = {"code": "ft6_jump", "sensor_type": "force_torque", "field": "fx", "kind": "delta", "warning_high": 5.0, "lag": 1}

    response = staff_client.post("/api/v1/rules/", body, format="json")

    assert response.status_code == 201
    assert (response.json()["kind"], response.json()["lag"], response.json()["field"]) == ("delta", 1, "fx")


def test_staff_update_and_delete_a_rule(staff_client, bench):
    pk = staff_client.post("/api/v1/rules/", TOO_HOT, format="json").json()["id"]

    patched = staff_client.patch(f"/api/v1/rules/{pk}/", {"enabled": False, "warning_high": 45.0}, format="json")
    put = staff_client.put(f"/api/v1/rules/{pk}/", {**TOO_HOT, "message": "Oven"}, format="json")

    assert patched.status_code == 200 and (patched.json()["enabled"], patched.json()["warning_high"]) == (False, 45.0)
    assert put.status_code == 200 and put.json()["message"] == "Oven" and put.json()["warning_high"] == 50.0
    assert staff_client.delete(f"/api/v1/rules/{pk}/").status_code == 204
    assert not ValidationRule.objects.filter(pk=pk).exists()


def test_any_user_may_list_rules_but_only_staff_edit_them(plain_client, staff_client, bench):
    pk = staff_client.post("/api/v1/rules/", TOO_HOT, format="json").json()["id"]

    assert plain_client.get("/api/v1/rules/").json()["count"] == 1
    assert plain_client.get(f"/api/v1/rules/{pk}/").status_code == 200
    for response in (
        plain_client.post("/api/v1/rules/", {**TOO_HOT, "code": "other"}, format="json"),
        plain_client.patch(f"/api/v1/rules/{pk}/", {"enabled": False}, format="json"),
        plain_client.delete(f"/api/v1/rules/{pk}/"),
    ):
        assert response.status_code == 403
        assert "staff" in response.json()["detail"]
    assert ValidationRule.objects.get().enabled is True


def test_rules_need_a_user_unless_reads_are_public(anon_client, staff_client, bench, settings):
    staff_client.post("/api/v1/rules/", TOO_HOT, format="json")
    assert anon_client.get("/api/v1/rules/").status_code in (401, 403)

    settings.ROBOTEST_PUBLIC_READ = True

    assert anon_client.get("/api/v1/rules/").json()["count"] == 1
    assert anon_client.post("/api/v1/rules/", {**TOO_HOT, "code": "x"}, format="json").status_code in (401, 403)
    assert ValidationRule.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sensor": "FZ"}, "sensor_type"),  # both a type and a sensor
        ({"sensor_type": ""}, "sensor_type"),  # neither
        ({"sensor_type": "", "sensor": None}, "sensor_type"),
        ({"sensor": 999999}, "sensor"),
        ({"sensor": "abc", "sensor_type": ""}, "sensor"),
        ({"warning_high": None, "error_high": None}, "warning_high"),  # a range rule without bounds
        ({"warning_low": 60.0}, "warning_low"),  # low above high
        ({"error_low": 10.0, "error_high": 5.0, "warning_high": None}, "error_low"),
        ({"error_high": 40.0}, "error_high"),  # error band inside the warning band
        ({"warning_low": 0.0, "error_low": 5.0}, "error_low"),
        ({"kind": "threshold"}, "kind"),
        ({"kind": "delta", "warning_high": None, "error_high": None}, "warning_high"),
        ({"kind": "delta", "warning_low": 1.0}, "warning_low"),
        ({"kind": "delta", "lag": 0}, "lag"),
        ({"kind": "delta", "warning_high": -1.0, "error_high": None}, "warning_high"),
        ({"warning_high": "hot"}, "warning_high"),
        ({"warning_high": "nan"}, "warning_high"),
        ({"error_high": "Infinity"}, "error_high"),
        ({"field": "bright ness"}, "field"),
        ({"field": "a" * 65}, "field"),
        ({"code": ""}, "code"),
        ({"code": "has space"}, "code"),
        ({"lag": -1}, "lag"),
        ({"lag": 40000}, "lag"),
        ({"enabled": "maybe"}, "enabled"),
        ({"sensor_type": "t" * 65}, "sensor_type"),
        ({"message": "m" * 201}, "message"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field(staff_client, bench, body, field):
    body = {**TOO_HOT, **body}
    if body.get("sensor") == "FZ":
        body["sensor"] = fz_id()

    response = staff_client.post("/api/v1/rules/", body, format="json")

    assert_named(response, 400, field)
    assert field in response.json()["errors"]
    assert not ValidationRule.objects.exists()


def test_an_unknown_rule_is_a_404(staff_client, bench):
    for path in ("/api/v1/rules/99999/", "/api/v1/rules/abc/", "/api/v1/rules/99999999999999999999999/"):
        response = staff_client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]
    assert staff_client.patch("/api/v1/rules/99999/", {"enabled": False}, format="json").status_code == 404


def test_a_second_rule_with_the_same_code_and_target_is_a_400(staff_client, bench):
    staff_client.post("/api/v1/rules/", TOO_HOT, format="json")

    response = staff_client.post("/api/v1/rules/", {**TOO_HOT, "warning_high": 10.0}, format="json")

    assert response.status_code == 400
    assert "code" in response.json()["errors"]
    assert ValidationRule.objects.count() == 1


def test_a_patch_is_judged_as_the_rule_it_leaves(staff_client, bench):
    pk = staff_client.post("/api/v1/rules/", TOO_HOT, format="json").json()["id"]

    both = staff_client.patch(f"/api/v1/rules/{pk}/", {"sensor": fz_id()}, format="json")
    inverted = staff_client.patch(f"/api/v1/rules/{pk}/", {"warning_high": 90.0}, format="json")

    assert both.status_code == 400 and "sensor_type" in both.json()["detail"]
    assert inverted.status_code == 400 and "error_high" in inverted.json()["detail"]
    assert ValidationRule.objects.get(pk=pk).warning_high == 50.0


@pytest.mark.parametrize(
    ("query", "codes"),
    [
        ("sensor_type=temperature", ["too_hot"]),
        ("sensor_type=nobody", []),
        ("enabled=false", ["off"]),
        ("enabled=true", ["fz_limit", "too_hot"]),
        ("kind=range&ordering=-code", ["too_hot", "off", "fz_limit"]),
        ("code=off", ["off"]),
    ],
)
def test_rules_filters(staff_client, bench, query, codes):
    staff_client.post("/api/v1/rules/", TOO_HOT, format="json")
    staff_client.post("/api/v1/rules/", {"code": "fz_limit", "sensor": fz_id(), "error_high": 40.0}, format="json")
    staff_client.post("/api/v1/rules/", {"code": "off", "sensor_type": "force", "enabled": False, "error_high": 1.0}, format="json")

    rows = staff_client.get(f"/api/v1/rules/?{query}").json()["results"]

    assert [r["code"] for r in rows] == codes


def test_rules_filter_by_sensor(staff_client, bench):
    staff_client.post("/api/v1/rules/", TOO_HOT, format="json")
    staff_client.post("/api/v1/rules/", {"code": "fz_limit", "sensor": fz_id(), "error_high": 40.0}, format="json")

    rows = staff_client.get(f"/api/v1/rules/?sensor={fz_id()}").json()["results"]

    assert [r["code"] for r in rows] == ["fz_limit"]


@pytest.mark.parametrize(
    ("query", "name", "code"),
    [
        ("enabled=maybe", "enabled", 400),
        ("sensor=abc", "sensor", 400),
        ("kind=threshold", "kind", 400),
        ("ordering=bogus", "ordering", 400),
        ("sensor=99999", "sensor", 404),
    ],
)
def test_a_bad_rules_filter_is_named(staff_client, bench, query, name, code):
    response = staff_client.get(f"/api/v1/rules/?{query}")

    assert_named(response, code, name)


def test_a_new_rule_applies_to_sessions_started_after_it(staff_client, start, ingest, bench):
    before = start("bench")["session_id"]
    assert staff_client.post("/api/v1/rules/", TOO_HOT, format="json").status_code == 201

    ingest(before, readings("temp", [99.0]))
    staff_client.post("/api/v1/sessions/stop", {"session_id": before}, format="json")
    after = start("bench")["session_id"]
    ingest(after, readings("temp", [99.0], t0=T0 + 100))

    old = staff_client.get(f"/api/v1/results/?session={before}").json()["results"]
    new = staff_client.get(f"/api/v1/results/?session={after}").json()["results"]
    assert old == []
    assert [(r["rule"], r["status"]) for r in new] == [("too_hot", "error")]


def test_a_stored_rule_replaces_the_default_of_its_code(staff_client, start, ingest, bench):
    staff_client.post(
        "/api/v1/rules/", {"code": "force_threshold", "sensor_type": "force", "error_high": 200.0}, format="json"
    )
    session_id = start("bench")["session_id"]

    response = ingest(session_id, readings("fz", [10.0, 10.0, 150.0]))

    assert [r["rule"] for r in response.json()["validation"]] == ["force_spike"]
