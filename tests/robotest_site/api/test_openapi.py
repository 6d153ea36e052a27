"""The OpenAPI schema at /api/schema/ and its docs at /api/docs/ (served offline, from our static files)."""

import re

import pytest
from django.core.management import call_command

SEED_AND_RESOURCE_PATHS = [
    "/api/v1/sessions/start",
    "/api/v1/sessions/stop",
    "/api/v1/sessions/status",
    "/api/v1/sessions/reset",
    "/api/v1/sessions/export/csv",
    "/api/v1/sessions/{session_id}/export/csv",
    "/api/v1/sensors/readings",
    "/api/v1/sensors/status",
    "/api/v1/rigs/",
    "/api/v1/rigs/{name}/",
    "/api/v1/sessions/",
    "/api/v1/sessions/{id}/",
    "/api/v1/sessions/{id}/readings/",
]


def test_schema_generates_valid_without_warnings(tmp_path):
    # --fail-on-warn: an undocumented view or an operation id used twice fails here, not in a client.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3.")


@pytest.fixture
def schema(anon_client):
    response = anon_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def test_schema_is_public_and_names_every_endpoint(schema, settings):
    assert schema["info"]["title"] == "RoboTest API"
    assert schema["info"]["version"] == settings.VERSION
    assert set(SEED_AND_RESOURCE_PATHS) <= set(schema["paths"])
    assert "/api/schema/" not in schema["paths"]


def test_readings_parameters_carry_their_bounds(schema, settings):
    operation = schema["paths"]["/api/v1/sensors/readings"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert {"session", "sensor", "sensor_type", "start_time", "end_time", "limit", "after", "after_seq"} <= set(params)
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": settings.MAX_DATA_POINTS, "default": 100}
    assert all(p["description"] for p in params.values())
    assert "Link" in operation["responses"]["200"]["headers"]
    assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_csv_export_is_documented_as_csv(schema):
    for path in ("/api/v1/sessions/export/csv", "/api/v1/sessions/{session_id}/export/csv"):
        content = schema["paths"][path]["get"]["responses"]["200"]["content"]
        assert content == {"text/csv": {"schema": {"type": "string", "format": "binary"}}}


def test_ingest_documents_its_body_and_errors(schema):
    operation = schema["paths"]["/api/v1/sessions/{id}/readings/"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert (body["type"], body["maxItems"], body["items"]["required"]) == ("array", 10000, ["sensor", "timestamp", "value"])
    assert {"201", "400", "403", "404", "409", "413", "415"} <= set(operation["responses"])


def test_sessions_say_what_they_send_before_a_verdict(schema):
    # A recording session has no operator when a script started it, and no verdict (null) until it ends.
    session = schema["components"]["schemas"]["RecordingSession"]["properties"]
    assert session["operator"]["nullable"] is True
    assert {"$ref": "#/components/schemas/NullEnum"} in session["verdict"]["oneOf"]


def test_docs_page_loads_only_our_own_static_files(db, anon_client):
    # The machine may be offline: Swagger UI's JS, CSS and icon come from the sidecar, never a CDN.
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    page = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    assert any(a.endswith("swagger-ui.css") for a in assets)
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    # The page's own script is served from ?script, not inline: the pages' CSP allows no inline script.
    script = "/api/docs/?script="
    assert script in assets
    for asset in assets:
        assert asset.startswith("/static/") or asset == script, asset
        served = anon_client.get(asset)
        assert served.status_code == 200, asset
        served.close()
    assert 'url: "/api/schema/"' in anon_client.get(script).content.decode()
