"""The live dashboard at `/`: controls, live charts, sensor tiles and the alerts feed."""

from django.middleware.csrf import get_token
from django.shortcuts import render


def dashboard(request):
    config = {
        "ws_path": "/ws/sensor-data",
        "start_url": "/api/v1/sessions/start",
        "stop_url": "/api/v1/sessions/stop",
        "csrf_token": get_token(request),
    }
    return render(request, "dashboard.html", {"nav": "dashboard", "dashboard_config": config})
