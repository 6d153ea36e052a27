import math

from rest_framework import serializers

from sensors.models import Rig, Sensor, ValidationRule


class SensorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Sensor
        fields = ["id", "name", "sensor_type", "unit", "rate_hz"]
        read_only_fields = ["id"]
        # Uniqueness within the rig is checked by RigSerializer, across the whole list.
        validators = []

    def validate_rate_hz(self, value: float | None) -> float | None:
        if value is not None and not 0 < value <= 1_000_000:
            raise serializers.ValidationError("must be greater than 0 (Hz), at most 1,000,000")
        return value


class RigSerializer(serializers.ModelSerializer):
    sensors = SensorSerializer(many=True)

    class Meta:
        model = Rig
        fields = ["id", "name", "source", "description", "sensors", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_source(self, value: str) -> str:
        if value != Rig.Source.EXTERNAL:
            raise serializers.ValidationError("rigs created over the API are external (source: \"external\")")
        return value

    def validate_sensors(self, value: list[dict]) -> list[dict]:
        if not value:
            raise serializers.ValidationError("a rig needs at least one sensor")
        names = [s["name"] for s in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise serializers.ValidationError(f"sensor names must be unique in a rig: {', '.join(duplicates)}")
        return value


_BOUNDS = ("warning_low", "warning_high", "error_low", "error_high")
# What an object value's field may be called: the same names the aggregates accept (sessions.recording.expressions).
_FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class ValidationRuleSerializer(serializers.ModelSerializer):
    """A stored rule: a bad combination is a 400 naming the field, before the database sees it."""

    sensor = serializers.PrimaryKeyRelatedField(
        queryset=Sensor.objects.all(), allow_null=True, required=False,
        help_text="Id of the one sensor this rule checks (instead of a sensor_type).",
    )
    sensor_name = serializers.CharField(source="sensor.name", read_only=True, allow_null=True, default=None)
    rig = serializers.CharField(source="sensor.rig.name", read_only=True, allow_null=True, default=None)
    field = serializers.RegexField(
        _FIELD_NAME, required=False, allow_blank=True, max_length=64,
        help_text="For object values: the key checked (e.g. brightness).",
    )

    class Meta:
        model = ValidationRule
        fields = [
            "id", "code", "sensor_type", "sensor", "sensor_name", "rig", "field", "kind",
            *_BOUNDS, "lag", "message", "enabled",
        ]
        read_only_fields = ["id"]
        # The validator keeps `lag` recent values per sensor; the same bound on every database.
        extra_kwargs = {"lag": {"min_value": 0, "max_value": 1000}}

    def validate(self, attrs: dict) -> dict:
        # A partial update is judged as the rule it leaves behind.
        merged = {}
        if self.instance is not None:
            merged = {name: getattr(self.instance, name) for name in ("code", "sensor_type", "sensor", "kind", *_BOUNDS, "lag")}
        merged.update(attrs)
        errors: dict[str, list[str]] = {}
        sensor_type, sensor = merged.get("sensor_type") or "", merged.get("sensor")
        if sensor_type and sensor is not None:
            errors["sensor_type"] = ["give a sensor_type or a sensor, not both"]
        elif not sensor_type and sensor is None:
            errors["sensor_type"] = ["give a sensor_type (every sensor of that type) or a sensor (its id)"]
        bounds = {name: merged.get(name) for name in _BOUNDS}
        for name, value in bounds.items():
            if value is not None and not math.isfinite(value):
                errors[name] = ["must be a finite number"]
        if errors:
            raise serializers.ValidationError(errors)
        if merged.get("kind", ValidationRule.Kind.RANGE) == ValidationRule.Kind.DELTA:
            errors.update(_delta_errors(bounds, merged.get("lag", 2)))
        else:
            errors.update(_range_errors(bounds))
        if not errors:
            errors.update(self._duplicate_errors(merged.get("code"), sensor_type, sensor))
        if errors:
            raise serializers.ValidationError(errors)
        return attrs

    def _duplicate_errors(self, code: str | None, sensor_type: str, sensor) -> dict:
        same = ValidationRule.objects.filter(code=code, sensor_type=sensor_type, sensor=sensor)
        if self.instance is not None:
            same = same.exclude(pk=self.instance.pk)
        if same.exists():
            target = f"sensor {sensor.pk}" if sensor is not None else f"sensor type {sensor_type!r}"
            return {"code": [f"a rule {code!r} for {target} exists already (id {same.first().pk}): edit that one"]}
        return {}


def _range_errors(bounds: dict) -> dict:
    if all(value is None for value in bounds.values()):
        return {"warning_high": ["a range rule needs a bound: warning_low, warning_high, error_low or error_high"]}
    errors = {}
    for band in ("warning", "error"):
        low, high = bounds[f"{band}_low"], bounds[f"{band}_high"]
        if low is not None and high is not None and low > high:
            errors[f"{band}_low"] = [f"must not be above {band}_high ({high})"]
    return errors | _band_order_errors(bounds)


def _delta_errors(bounds: dict, lag: int | None) -> dict:
    errors = {}
    for name in ("warning_low", "error_low"):
        if bounds[name] is not None:
            errors[name] = ["a delta rule has no low bound: it flags a change larger than warning_high or error_high"]
    if bounds["warning_high"] is None and bounds["error_high"] is None:
        errors["warning_high"] = ["a delta rule needs warning_high or error_high (the largest change allowed)"]
    for name in ("warning_high", "error_high"):
        if bounds[name] is not None and bounds[name] < 0:
            errors[name] = ["a change is a size: must be 0 or more"]
    if lag is None or lag < 1:
        errors["lag"] = ["a delta rule compares with a reading at least 1 back: must be 1 or more"]
    return _band_order_errors(bounds) | errors


def _band_order_errors(bounds: dict) -> dict:
    """The error band must lie outside the warning band: otherwise the warning is never reached."""
    errors = {}
    if None not in (bounds["error_high"], bounds["warning_high"]) and bounds["error_high"] < bounds["warning_high"]:
        errors["error_high"] = [f"must not be below warning_high ({bounds['warning_high']})"]
    if None not in (bounds["error_low"], bounds["warning_low"]) and bounds["error_low"] > bounds["warning_low"]:
        errors["error_low"] = [f"must not be above warning_low ({bounds['warning_low']})"]
    return errors
