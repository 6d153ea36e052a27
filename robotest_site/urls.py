from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from robotest_site import views
from sensors.api.rules import ValidationRuleViewSet
from sensors.api.views import RigViewSet
from sessions.api import exports, readings
from sessions.api import sessions as session_views
from sessions.api.aggregates import AggregatedReadingsView
from sessions.api.results import ResultViewSet, ValidationView

router = DefaultRouter()
router.register("rigs", RigViewSet, basename="rig")
router.register("sessions", session_views.RecordingSessionViewSet, basename="session")
router.register("rules", ValidationRuleViewSet, basename="rule")
router.register("results", ResultViewSet, basename="result")

# The seed's paths have no trailing slash: routed one by one, before the router's.
seed_paths = [
    path("sessions/start", session_views.SessionStartView.as_view(), name="session-start"),
    path("sessions/stop", session_views.SessionStopView.as_view(), name="session-stop"),
    path("sessions/status", session_views.SessionStatusView.as_view(), name="session-status"),
    path("sessions/reset", session_views.SessionResetView.as_view(), name="session-reset"),
    path("sessions/export/csv", exports.SessionCsvExportView.as_view(), name="session-export-csv"),
    path("sessions/<int:session_id>/export/csv", exports.SessionCsvExportOneView.as_view(), name="session-export-csv-one"),
    path("sessions/<int:session_id>/export/json", exports.SessionRecordExportView.as_view(), name="session-export-json-one"),
    path("sessions/<int:session_id>/export/mcap", exports.SessionMcapExportView.as_view(), name="session-export-mcap-one"),
    path("sensors/readings", readings.ReadingsView.as_view(), name="readings"),
    path("sensors/readings/latest", readings.LatestReadingsView.as_view(), name="readings-latest"),
    path("sensors/validation", ValidationView.as_view(), name="validation"),
    path("sensors/readings/aggregated", AggregatedReadingsView.as_view(), name="readings-aggregated"),
    path("sensors/status", session_views.SensorsStatusView.as_view(), name="sensors-status"),
]

docs_view = SpectacularSwaggerSplitView.as_view(url_name="schema")

# Under /api/, a path that matches no route (`/api/v1/sessions/abc/readings/`) answers JSON too.
handler404 = views.not_found

urlpatterns = [
    path("", views.root, name="dashboard"),
    path("health", views.health, name="health"),
    path("ready", views.ready, name="ready"),
    path("metrics", views.metrics_view, name="metrics"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("sessions.pages.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(seed_paths)),
    path("api/v1/", include(router.urls)),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Its script from `?script` rather than inline (the pages' CSP has no inline script); its template's
    # one <style> block needs inline styles, on this page only.
    path("api/docs/", csp_replace({"style-src": [SELF, UNSAFE_INLINE]})(docs_view), name="docs"),
]
