from rest_framework import serializers

from sensors.models import Rig, Sensor


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
