"""API errors are JSON naming the problem, also where Django, not DRF, would answer (found by schemathesis)."""

import json
import warnings

import pytest
from django.conf import settings

from tests.api.conftest import T0


def test_an_api_path_that_matches_no_route_is_a_json_404(staff_client):
    # No route at all: the URL resolver, not a view, refuses it.
    response = staff_client.get("/api/v1/sessions/12/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "/api/v1/sessions/12/no-such-thing/" in response.json()["detail"]


def test_a_session_id_that_is_no_number_is_a_json_404_naming_it(staff_client):
    response = staff_client.get("/api/v1/sessions/0.5/readings/")
    assert response.status_code == 404
    assert response.json()["detail"] == "no session '0.5'"


def test_a_path_outside_the_api_keeps_django_s_404_page(staff_client):
    response = staff_client.get("/no-such-page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_body_over_the_upload_limit_is_a_json_413_that_says_so(staff_client, bench_session):
    reading = {"sensor": "fz", "timestamp": T0, "value": 1.0, "note": "x" * 1000}
    body = json.dumps([reading] * 3000)
    assert len(body) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = staff_client.post(f"/api/v1/sessions/{bench_session}/readings/", body, content_type="application/json")
    assert response.status_code == 413
    assert "smaller batches" in response.json()["detail"]


def test_a_csv_download_asked_for_as_text_csv_is_no_406(staff_client, bench_session):
    response = staff_client.get(f"/api/v1/sessions/{bench_session}/export/csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    with warnings.catch_warnings():  # the sync test client reads the async stream whole (Django warns)
        warnings.simplefilter("ignore")
        assert b"".join(response).decode().startswith("timestamp,sensor_type,value")
    # Its errors are still JSON, naming what is missing.
    missing = staff_client.get("/api/v1/sessions/export/csv?session=999999", HTTP_ACCEPT="text/csv")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no session 999999"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sensors/readings?sensor=f%00z",
        "/api/v1/sensors/readings?sensor_type=for%00ce",
        "/api/v1/sessions/status?rig=s%00im",
        # These two were still 500s until the check moved into one middleware for every API view.
        "/api/v1/sensors/readings/latest?rig=s%00im",
        "/api/v1/sensors/validation?sensor=f%00z",
        "/api/v1/sensors/readings/aggregated?sensor_type=for%00ce",
        "/api/v1/results/?sensor=f%00z",
    ],
)
def test_a_nul_character_in_a_text_parameter_is_a_400_naming_it(staff_client, path):
    # PostgreSQL refuses NUL in text: this was a 500.
    response = staff_client.get(path)
    assert response.status_code == 400, response.content
    name = path.split("?")[1].split("=")[0]
    assert list(response.json()["errors"]) == [name]


def test_a_nul_character_in_a_rig_name_path_is_a_json_404(staff_client, bench):
    response = staff_client.get("/api/v1/rigs/ben%00ch/")
    assert response.status_code == 404
    assert "detail" in response.json()
