from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sensors.rules import Episode


class RecordingSession(models.Model):
    """One recording of one rig, with the rule snapshot it started with and its verdict."""

    class Status(models.TextChoices):
        RECORDING = "recording"
        COMPLETED = "completed"
        ABORTED = "aborted"

    class Verdict(models.TextChoices):
        PASS = "pass"
        WARNING = "warning"
        FAIL = "fail"
        ERROR = "error"

    rig = models.ForeignKey("sensors.Rig", on_delete=models.PROTECT, related_name="sessions")
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    operator = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECORDING)
    started_at = models.DateTimeField()
    # The engine (EngineHeartbeat.name) that runs this session's simulators: one at a time, so
    # several run_simulators processes share the sessions instead of recording each twice.
    engine = models.CharField(max_length=200, blank=True)
    # Set by stop: the recorder stores every reading up to this instant, then completes the session.
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # The rule set in force when the session started (see sensors.rules.snapshot).
    rules = models.JSONField(default=list)
    # Sensor rates in force when it started: {sensor name: Hz}.
    rates = models.JSONField(default=dict)
    # Also the session's sequence counter: the pipeline takes positions from it under a row lock.
    reading_count = models.BigIntegerField(default=0)
    alert_count = models.IntegerField(default=0)
    # Readings due that were never stored: dropped from a full engine buffer while the database
    # was away, or beyond the engine's catch-up after it was down. More than 0 makes the verdict error.
    lost_readings = models.BigIntegerField(default=0)
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True)
    summary_stats = models.JSONField(default=dict, blank=True)
    # Retention (manage.py prune_readings, docs/retention.md): a kept session's readings are never
    # pruned; a pruned one keeps this row (counters, statistics, verdict) and says when it lost the rest.
    keep = models.BooleanField(default=False, help_text="Never prune this session's readings (prune_readings).")
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rig"], condition=Q(status="recording"), name="one_recording_session_per_rig"
            ),
        ]
        indexes = [
            models.Index(fields=["status"], name="session_status_idx"),
            # The session list pages newest first by keyset on (started_at, id) (migration 0008).
            models.Index(fields=["started_at", "id"], name="session_started_idx"),
        ]
        # Given to the operator and admin roles (robotest_site/roles.py, migration 0007).
        permissions = [("operate_session", "Can start, stop and reset recording sessions and ingest readings")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name or self.rig_id}"

    def duration_seconds(self) -> float:
        """Seconds from start to stop, or to now while it records."""
        end = self.stopped_at or timezone.now()
        return (end - self.started_at).total_seconds()

    def duration_text(self) -> str:
        """The duration for people: `12.4 s`, `3 min 07 s`, `1 h 02 min`."""
        seconds = self.duration_seconds()
        if seconds < 60:
            return f"{seconds:.1f} s"
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


class Reading(models.Model):
    """One stored reading. `value` is a number or an object (JSON), so a new sensor kind needs no migration."""

    id = models.BigAutoField(primary_key=True)
    # No database constraints on these two: PostgreSQL checks both keys of every row at commit,
    # which cost two thirds of a COPY (docs/benchmarks.md). The pipeline is the only writer and
    # holds the session's row lock and the rig's sensors; deletes cascade through the ORM.
    session = models.ForeignKey(
        RecordingSession, on_delete=models.CASCADE, related_name="readings", db_index=False, db_constraint=False
    )
    sensor = models.ForeignKey(
        "sensors.Sensor", on_delete=models.PROTECT, related_name="readings", db_index=False, db_constraint=False
    )
    # Position in the session, from 1: lets a client see a gap and backfill from it.
    seq = models.BigIntegerField()
    timestamp = models.DateTimeField()
    value = models.JSONField()

    class Meta:
        # One secondary index on purpose: each one halves COPY throughput. It serves reads by
        # session, by sensor within a session, and time ranges of either.
        indexes = [models.Index(fields=["session", "sensor", "timestamp"], name="reading_session_sensor_time")]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.seq}"


class ValidationResult(models.Model):
    """An alert: a run of consecutive violations of one rule on one sensor."""

    class Status(models.TextChoices):
        WARNING = "warning"
        ERROR = "error"

    # No database constraints on these two, as on readings: a spiky signal opens a result every few
    # readings, and checking both keys of each at commit cost the pipeline a tenth of its time
    # (docs/benchmarks.md). The pipeline is the only writer; deletes cascade through the ORM. No
    # index of its own on session either: result_session_open starts with it.
    session = models.ForeignKey(
        RecordingSession, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    sensor = models.ForeignKey("sensors.Sensor", on_delete=models.PROTECT, related_name="results", db_constraint=False)
    rule = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=Status.choices)
    message = models.CharField(max_length=300)
    first_timestamp = models.DateTimeField()
    last_timestamp = models.DateTimeField()
    count = models.IntegerField(default=1)
    peak = models.FloatField()
    details = models.JSONField(default=dict, blank=True)
    # Open while the run may still grow; closed by the first reading that passes the rule.
    is_open = models.BooleanField(default=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-last_timestamp", "-id"]
        indexes = [
            models.Index(fields=["session", "is_open"], name="result_session_open"),
            # Only acknowledged results: every result is inserted unacknowledged, and an index of
            # all of them would take an entry for each NULL (a user's deletion looks them up).
            models.Index(
                fields=["acknowledged_by"], name="result_acknowledged_by", condition=Q(acknowledged_by__isnull=False)
            ),
        ]
        permissions = [("acknowledge_result", "Can acknowledge a validation result")]

    def __str__(self) -> str:
        return f"{self.rule} {self.status} x{self.count}"

    def episode(self, *, sensor: str | None = None, sensor_type: str | None = None) -> Episode:
        """The stored result as the validator's Episode; without the sensor's name and type, from `self.sensor`."""
        return Episode(
            rule=self.rule, sensor=sensor or self.sensor.name, sensor_type=sensor_type or self.sensor.sensor_type,
            status=self.status, message=self.message, first_timestamp=self.first_timestamp.timestamp(),
            last_timestamp=self.last_timestamp.timestamp(), count=self.count, peak=self.peak, details=self.details,
            is_open=self.is_open, result_id=self.pk,
        )


class EngineHeartbeat(models.Model):
    """The simulator engine's sign of life, written every second; `/health` reads it."""

    name = models.CharField(max_length=200, unique=True)
    pid = models.IntegerField()
    beat_at = models.DateTimeField()
    sessions = models.IntegerField(default=0)
    # Readings simulated and not yet stored (the database was away), and those the engine dropped
    # since it started because its buffer was full (`/health` shows both).
    buffered = models.BigIntegerField(default=0)
    lost_readings = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return self.name


class LiveServer(models.Model):
    """A web process's live-feed counters, written every few seconds: clients connected, frames dropped."""

    name = models.CharField(max_length=200, unique=True)
    clients = models.IntegerField(default=0)
    dropped_frames = models.BigIntegerField(default=0)
    # Readings the channel layer never delivered to this process (skipped sequence positions).
    lost_readings = models.BigIntegerField(default=0)
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.name


class IngestKey(models.Model):
    """An ingest batch's `Idempotency-Key` and the answer it got, kept 24 h so a retried batch is stored once.

    Written in the batch's own transaction (services.readings_ingest): a key is never stored
    without its readings, nor readings of a keyed batch without their key.
    """

    # A key names a batch of one session: a rig that numbers its batches 1, 2, 3… in every
    # session (or several rigs behind one user's token) cannot collide with another session.
    session = models.ForeignKey(RecordingSession, on_delete=models.CASCADE, related_name="+", db_index=False)
    key = models.CharField(max_length=200)
    # SHA-256 of the request's raw body: a retry resends the same bytes.
    digest = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    answer = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="ingest_key_per_session")]
        # Expired keys are pruned oldest first (services.ingest_keys_prune).
        indexes = [models.Index(fields=["created_at"], name="ingest_key_created")]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.key}"


class ReadingRollup(models.Model):
    """Count, sum, min and max of one sensor's numbers (or one numeric field of its objects) over one cell of time.

    Kept by the pipeline as it writes (sessions/recording/rollups.py), at several resolutions
    (10 ms, 100 ms, 1 s, 10 s, 1 min): aggregates read the coarsest cells that fit their buckets,
    far fewer rows than the readings. `field` is '' for scalar values. Every resolution holds every
    number once, so a sum over the rows of one resolution is the session's.
    """

    id = models.BigAutoField(primary_key=True)
    # Deleted with the session (ORM cascade) and with its readings (services.readings_delete).
    session = models.ForeignKey(
        RecordingSession, on_delete=models.CASCADE, related_name="rollups", db_index=False, db_constraint=False
    )
    sensor = models.ForeignKey(
        "sensors.Sensor", on_delete=models.PROTECT, related_name="rollups", db_index=False, db_constraint=False
    )
    field = models.CharField(max_length=64, blank=True)
    # The cell's length in microseconds; rows from before resolutions (migration 0013) are seconds.
    resolution = models.IntegerField()
    # The cell's index from the epoch, floor(Unix µs / resolution) (Unix seconds at 1 s): integer
    # cells add up the same way on every database.
    bucket = models.BigIntegerField()
    count = models.BigIntegerField()
    sum = models.FloatField()
    min = models.FloatField()
    max = models.FloatField()

    SECOND = 1_000_000

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "sensor", "field", "resolution", "bucket"], name="rollup_session_sensor_cell"
            ),
        ]
        # Aggregates without a session (hours_back) pick a sensor's cells across its sessions.
        indexes = [models.Index(fields=["sensor", "field", "resolution", "bucket"], name="rollup_sensor_cell")]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.sensor_id}/{self.field}@{self.bucket}x{self.resolution}us"
