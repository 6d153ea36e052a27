import hashlib
import secrets

from django.db import models
from django.db.models import Q

# The simulated rig every installation has (migration 0002): what a request that names no rig means.
DEFAULT_RIG = "sim"


class Rig(models.Model):
    """A test station whose sensors are either simulated by the engine or pushed by a real rig."""

    class Source(models.TextChoices):
        SIMULATED = "simulated"
        EXTERNAL = "external"

    name = models.SlugField(max_length=64, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.EXTERNAL)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Sensor(models.Model):
    """One sensor of a rig; its kind is free text, so a new kind needs no migration."""

    rig = models.ForeignKey(Rig, on_delete=models.CASCADE, related_name="sensors")
    name = models.SlugField(max_length=64)
    sensor_type = models.CharField(max_length=64)
    unit = models.CharField(max_length=32, blank=True)
    # Null: the rate comes from the settings for its type (FORCE_SENSOR_HZ, …) when a session starts.
    rate_hz = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["rig_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["rig", "name"], name="sensor_name_unique_in_rig"),
            models.CheckConstraint(condition=Q(rate_hz__isnull=True) | Q(rate_hz__gt=0), name="sensor_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.rig_id}:{self.name}"


class ValidationRule(models.Model):
    """A stored rule; it replaces the default rule of the same `code`, or adds to them.

    `range` flags a value outside [low, high] bounds (a warning band and an error band, either
    side optional); `delta` flags a reading that differs from the one `lag` readings before it by
    more than the high bound.
    """

    class Kind(models.TextChoices):
        RANGE = "range"
        DELTA = "delta"

    code = models.SlugField(max_length=64, help_text="Same code as a default rule replaces it.")
    sensor_type = models.CharField(max_length=64, blank=True, help_text="Applies to every sensor of this type.")
    sensor = models.ForeignKey(
        Sensor, null=True, blank=True, on_delete=models.CASCADE, related_name="rules",
        help_text="Applies to this sensor only (instead of a type).",
    )
    field = models.CharField(max_length=64, blank=True, help_text="For object values: the field checked.")
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.RANGE)
    warning_low = models.FloatField(null=True, blank=True)
    warning_high = models.FloatField(null=True, blank=True)
    error_low = models.FloatField(null=True, blank=True)
    error_high = models.FloatField(null=True, blank=True)
    lag = models.PositiveSmallIntegerField(default=2, help_text="For delta rules: how many readings back.")
    message = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True, help_text="A disabled rule with a default's code removes that default.")

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(sensor__isnull=True) & ~Q(sensor_type="")) | (Q(sensor__isnull=False) & Q(sensor_type="")),
                name="rule_targets_a_type_or_a_sensor",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class RigToken(models.Model):
    """A rig's API key: it may ingest into, and read the readings of, its own rig's sessions only.

    The key is `rig_` and 40 hex digits, shown once when it is made; only its SHA-256 is kept, so
    a copy of the database (a backup, a dump handed to support) holds no usable key. A fast hash
    is enough: the key has 160 random bits, there is nothing to guess (robotest_site/api/authentication.py).
    """

    PREFIX = "rig_"

    rig = models.ForeignKey(Rig, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What holds the key (a PLC, a script).")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    # The key's first characters, to tell tokens apart in lists and logs; far too few to use.
    hint = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When, not only whether: an audit asks which batches came in before the key was withdrawn.
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rig_id", "-created_at"]

    def __str__(self) -> str:
        return f"{self.hint}… {self.name}".strip()

    @classmethod
    def issue(cls, *, rig: Rig, name: str = "") -> tuple["RigToken", str]:
        """A new token of `rig` and its key, which is not stored and cannot be shown again."""
        token = cls(rig=rig, name=name)
        key = token.set_new_key()
        token.save()
        return token, key

    def set_new_key(self) -> str:
        """Give this (unsaved) token a new random key; returns the key, which only the caller will know."""
        key = self.PREFIX + secrets.token_hex(20)
        self.digest = self.digest_of(key)
        self.hint = key[: len(self.PREFIX) + 4]
        return key

    @staticmethod
    def digest_of(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
