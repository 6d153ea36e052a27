"""Gauges of the whole installation, read from the database when `/metrics` is scraped.

Sessions recording and worker heartbeats are rows every web process sees alike: any daphne
reports them, and the workers (which serve no HTTP but their own counters) need not.
"""

from django.db.models import Count
from django.utils import timezone
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.registry import Collector

from sessions.models import EngineHeartbeat, RecordingSession


class ClusterCollector(Collector):
    """Sessions recording by rig source, and each worker's heartbeat age."""

    def collect(self):
        recording = GaugeMetricFamily(
            "robotest_sessions_recording", "Sessions recording now, by rig source (simulated or external).",
            labels=["source"],
        )
        age = GaugeMetricFamily(
            "robotest_worker_heartbeat_age_seconds", "Seconds since each run_simulators engine last beat.",
            labels=["worker"],
        )
        failed = GaugeMetricFamily(
            "robotest_cluster_scrape_failed", "1 when the database could not be read for the gauges above."
        )
        try:
            counts = dict.fromkeys(("simulated", "external"), 0)
            rows = (
                RecordingSession.objects.filter(status=RecordingSession.Status.RECORDING)
                .values_list("rig__source").annotate(n=Count("id"))
            )
            counts.update(dict(rows))
            now = timezone.now()
            beats = list(EngineHeartbeat.objects.values_list("name", "beat_at"))
        except Exception:
            failed.add_metric([], 1)
            yield failed
            return
        for source, n in sorted(counts.items()):
            recording.add_metric([source], n)
        for name, beat_at in beats:
            age.add_metric([name], max(0.0, (now - beat_at).total_seconds()))
        failed.add_metric([], 0)
        yield from (recording, age, failed)


REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(ClusterCollector())
