"""Site-level views: the root (JSON or the dashboard), health, readiness and the Prometheus metrics."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.vary import vary_on_headers
from django.views.defaults import page_not_found
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from robotest_site.observability import cluster, metrics, readiness
from sessions.live import presence
from sessions.pages.dashboard import dashboard


@vary_on_headers("Accept")
def root(request):
    """JSON for API clients; the dashboard for a browser."""
    if "text/html" in request.headers.get("Accept", ""):
        return dashboard(request)
    return JsonResponse(
        {"message": f"{settings.PROJECT_NAME} API", "version": settings.VERSION, "status": "running"}
    )


def not_found(request, exception):
    """A path nothing routes: JSON under /api/ (API errors are JSON, docs/errors.md), Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"no such path: {request.path}"}, status=404)
    return page_not_found(request, exception)


def health(request):
    """Liveness with detail: database, channel layer, worker heartbeat, live feed; 503 when the database or the layer is down."""
    services = {**readiness.dependencies(), "live_feed": _live_feed()}
    overall = readiness.overall(services)
    body = {"status": overall, "timestamp": timezone.now().timestamp(), "version": settings.VERSION, "services": services}
    return JsonResponse(body, status=503 if overall == "unhealthy" else 200)


def ready(request):
    """Readiness: 200 when the database and the layer answer and a worker beats where one is needed; else 503."""
    checks = readiness.dependencies()
    overall = readiness.overall(checks)
    failing = sorted(name for name, check in checks.items() if check["status"] != "up" and check.get("needed", True))
    body = {
        "status": "ready" if overall == "healthy" else "not_ready",
        "timestamp": timezone.now().timestamp(),
        "failing": failing,
        "checks": checks,
    }
    return JsonResponse(body, status=200 if overall == "healthy" else 503)


def metrics_view(request):
    """The process's metrics and the installation's gauges, in the Prometheus text format (docs/operations.md)."""
    allowed = metrics.scrape_allowed(
        address=request.META.get("REMOTE_ADDR"),
        authorization=request.headers.get("Authorization", ""),
        networks=settings.ROBOTEST_METRICS_ALLOW,
        token=settings.ROBOTEST_METRICS_TOKEN,
    )
    if not allowed:
        return JsonResponse(
            {"detail": "metrics are served to the addresses in ROBOTEST_METRICS_ALLOW, or with "
                       "`Authorization: Bearer <ROBOTEST_METRICS_TOKEN>`"},
            status=403,
        )
    return HttpResponse(generate_latest(REGISTRY) + generate_latest(cluster.REGISTRY), content_type=CONTENT_TYPE_PLAIN_0_0_4)


def _live_feed() -> dict:
    try:
        totals = presence.totals()
    except Exception as exc:
        return {"status": "unknown", "error": str(exc)[:200]}
    return {"status": "up", "connected_clients": totals["clients"], "dropped_frames": totals["dropped_frames"],
            "layer_lost_readings": totals["layer_lost_readings"], "server_processes": totals["processes"]}
