from django.contrib import admin

from sensors.models import Rig, Sensor, ValidationRule


class SensorInline(admin.TabularInline):
    model = Sensor
    extra = 0


@admin.register(Rig)
class RigAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["name"]
    inlines = [SensorInline]


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    list_display = ["name", "rig", "sensor_type", "unit", "rate_hz"]
    list_filter = ["rig", "sensor_type"]


@admin.register(ValidationRule)
class ValidationRuleAdmin(admin.ModelAdmin):
    list_display = ["code", "sensor_type", "sensor", "field", "kind", "warning_low", "warning_high",
                    "error_low", "error_high", "enabled"]
    list_filter = ["kind", "enabled", "sensor_type"]
    list_editable = ["enabled"]
