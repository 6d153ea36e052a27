"""The admin site's rigs with their sensors, and rules checked exactly as the API checks them."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from sensors.models import Rig, ValidationRule

pytestmark = pytest.mark.django_db

RULES = "/admin/sensors/validationrule/"


@pytest.fixture
def admin_client(django_user_model):
    user = django_user_model.objects.create_user("boss", password="secret-pass-1")
    user.groups.add(Group.objects.get(name="admin"))
    client = Client()
    client.force_login(user)
    return client


def rule_form(**fields) -> dict:
    form = {"code": "grip_force", "sensor_type": "force", "sensor": "", "field": "", "kind": "range", "warning_low": "",
            "warning_high": "", "error_low": "", "error_high": "", "lag": "2", "message": "", "enabled": "on"}
    return form | {name: str(value) for name, value in fields.items()}


def api_body(form: dict) -> dict:
    numbers = ("warning_low", "warning_high", "error_low", "error_high", "lag")
    body = {k: (float(v) if k in numbers else v) for k, v in form.items() if v != "" and k not in ("sensor", "enabled")}
    return body


def test_rigs_list_and_a_rig_page_with_its_sensors(admin_client, bench, sim_rig):
    listing = admin_client.get("/admin/sensors/rig/")
    page = admin_client.get(f"/admin/sensors/rig/{bench.pk}/change/")

    assert listing.status_code == 200 and b"bench" in listing.content and b"sim" in listing.content
    assert page.status_code == 200
    assert [s.original.name for s in page.context["inline_admin_formsets"][0] if s.original] == ["ft6", "fz", "temp"]


def rig_form(**sensor) -> dict:
    form = {"name": "arm", "source": "external", "description": "",
            "sensors-TOTAL_FORMS": "1", "sensors-INITIAL_FORMS": "0", "sensors-MIN_NUM_FORMS": "0",
            "sensors-MAX_NUM_FORMS": "1000"}
    fields = {"name": "grip", "sensor_type": "force", "unit": "N", "rate_hz": ""} | sensor
    return form | {f"sensors-0-{name}": str(value) for name, value in fields.items()}


def test_a_rig_is_added_with_its_sensors(admin_client):
    response = admin_client.post("/admin/sensors/rig/add/", rig_form(rate_hz=250))

    assert response.status_code == 302
    assert list(Rig.objects.get(name="arm").sensors.values_list("name", "rate_hz")) == [("grip", 250.0)]


@pytest.mark.parametrize("rate", [0, -5, 2_000_000])
def test_a_sensor_rate_out_of_the_apis_bounds_is_a_form_error(admin_client, staff_client, rate):
    response = admin_client.post("/admin/sensors/rig/add/", rig_form(rate_hz=rate))
    sensors = [{"name": "grip", "sensor_type": "force", "rate_hz": rate}]
    api = staff_client.post("/api/v1/rigs/", {"name": "arm", "sensors": sensors}, format="json")

    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert errors["rate_hz"] == api.json()["errors"]["sensors"]["0"]["rate_hz"]
    assert not Rig.objects.filter(name="arm").exists()


def test_rules_list_and_a_rule_page_load(admin_client):
    rule = ValidationRule.objects.create(code="temp_high", sensor_type="temperature", warning_high=50.0)

    assert admin_client.get(RULES).status_code == 200
    assert admin_client.get(f"{RULES}{rule.pk}/change/").status_code == 200


@pytest.mark.parametrize(
    ("bounds", "field"),
    [
        ({"warning_high": 90, "error_high": 80}, "error_high"),
        ({"warning_low": 10, "warning_high": 5}, "warning_low"),
        ({"error_low": 20, "error_high": 5}, "error_low"),
        ({}, "warning_high"),
        ({"kind": "delta", "warning_low": 1, "warning_high": 5}, "warning_low"),
        ({"kind": "delta", "warning_high": 5, "lag": 0}, "lag"),
        ({"warning_high": 5, "lag": 5000}, "lag"),
        ({"warning_high": 5, "field": "not a name"}, "field"),
    ],
)
def test_a_bad_rule_is_a_form_error_with_the_apis_message(admin_client, staff_client, bounds, field):
    form = rule_form(**bounds)

    response = admin_client.post(f"{RULES}add/", form)
    api = staff_client.post("/api/v1/rules/", api_body(form), format="json")

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert api.status_code == 400
    assert errors[field] == api.json()["errors"][field]
    assert not ValidationRule.objects.exists()


def test_a_rule_for_both_a_type_and_a_sensor_is_a_form_error(admin_client, bench):
    response = admin_client.post(f"{RULES}add/", rule_form(warning_high=5, sensor=bench.sensors.get(name="fz").pk))

    assert "not both" in str(response.context["adminform"].form.errors["sensor_type"])
    assert not ValidationRule.objects.exists()


def test_a_second_rule_with_the_same_code_and_target_is_a_form_error(admin_client):
    ValidationRule.objects.create(code="grip_force", sensor_type="force", warning_high=50.0)

    response = admin_client.post(f"{RULES}add/", rule_form(warning_high=60))

    assert "exists already" in str(response.context["adminform"].form.errors["code"])
    assert ValidationRule.objects.count() == 1


def test_a_good_rule_is_saved_and_an_edit_is_judged_as_the_rule_it_leaves(admin_client):
    assert admin_client.post(f"{RULES}add/", rule_form(warning_high=50, error_high=80)).status_code == 302
    rule = ValidationRule.objects.get()
    assert (rule.warning_high, rule.error_high) == (50.0, 80.0)

    response = admin_client.post(f"{RULES}{rule.pk}/change/", rule_form(warning_high=90, error_high=80))

    assert "must not be below warning_high" in str(response.context["adminform"].form.errors["error_high"])
    assert ValidationRule.objects.get().warning_high == 50.0


def test_the_rules_list_toggles_enabled(admin_client):
    rule = ValidationRule.objects.create(code="temp_high", sensor_type="temperature", warning_high=50.0)

    response = admin_client.post(RULES, {
        "form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(rule.pk), "_save": "Save",
    })

    assert response.status_code == 302
    assert ValidationRule.objects.get().enabled is False
