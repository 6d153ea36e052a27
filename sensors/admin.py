"""The admin site's rigs (with their sensors), rig tokens, and validation rules, checked as the API checks them."""

from django import forms
from django.contrib import admin, messages
from django.utils import timezone
from rest_framework import serializers

from sensors.api.serializers import SensorSerializer, ValidationRuleSerializer
from sensors.models import Rig, RigToken, Sensor, ValidationRule

# The rule's fields the serializer judges, as the model names them.
RULE_FIELDS = ("code", "sensor_type", "sensor", "field", "kind", "warning_low", "warning_high", "error_low",
               "error_high", "lag", "message", "enabled")


class ValidationRuleForm(forms.ModelForm):
    """A rule as the API's serializer judges it: a bad bound is the same message on the same field."""

    class Meta:
        model = ValidationRule
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # The rule this form leaves behind (the changelist edits `enabled` alone), in the API's terms.
        data = {name: getattr(self.instance, name) for name in RULE_FIELDS}
        data["sensor"] = self.instance.sensor_id
        data.update({name: value for name, value in cleaned.items() if name in RULE_FIELDS})
        if isinstance(data["sensor"], Sensor):
            data["sensor"] = data["sensor"].pk
        serializer = ValidationRuleSerializer(instance=self.instance if self.instance.pk else None, data=data)
        if not serializer.is_valid():
            for name, messages in serializer.errors.items():
                self.add_error(name if name in self.fields else None, [str(message) for message in messages])
        return cleaned


class RuleEnabledForm(forms.ModelForm):
    """The rules list's `enabled` box, named after its rule (the list has no label per row)."""

    class Meta:
        model = ValidationRule
        fields = ["enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["enabled"].widget.attrs["aria-label"] = f"{self.instance.code} enabled"


class SensorForm(forms.ModelForm):
    """A sensor whose rate is bounded as the API bounds it."""

    class Meta:
        model = Sensor
        fields = "__all__"

    def clean_rate_hz(self) -> float | None:
        try:
            return SensorSerializer().validate_rate_hz(self.cleaned_data["rate_hz"])
        except serializers.ValidationError as exc:
            raise forms.ValidationError([str(message) for message in exc.detail]) from None


class SensorInline(admin.TabularInline):
    model = Sensor
    form = SensorForm
    extra = 0


@admin.register(Rig)
class RigAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "sensor_count", "created_at"]
    list_filter = ["source"]
    search_fields = ["name", "description"]
    inlines = [SensorInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("sensors")

    @admin.display(description="sensors")
    def sensor_count(self, obj: Rig) -> int:
        return len(obj.sensors.all())


@admin.register(Sensor)
class SensorAdmin(admin.ModelAdmin):
    form = SensorForm
    list_display = ["name", "rig", "sensor_type", "unit", "rate_hz"]
    list_filter = ["rig", "sensor_type"]
    search_fields = ["name", "sensor_type", "rig__name"]


@admin.register(ValidationRule)
class ValidationRuleAdmin(admin.ModelAdmin):
    form = ValidationRuleForm
    list_display = ["code", "sensor_type", "sensor", "field", "kind", "warning_low", "warning_high",
                    "error_low", "error_high", "enabled"]
    list_filter = ["kind", "enabled", "sensor_type"]
    list_editable = ["enabled"]
    list_select_related = ["sensor"]
    search_fields = ["code", "sensor_type", "field", "message"]

    def get_changelist_form(self, request, **kwargs):
        return super().get_changelist_form(request, form=RuleEnabledForm, **kwargs)


@admin.register(RigToken)
class RigTokenAdmin(admin.ModelAdmin):
    """Rig tokens: made here (the key is shown once, in the message after saving), listed, revoked."""

    list_display = ["hint", "rig", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["rig", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["rig"]
    search_fields = ["name", "hint", "rig__name"]
    readonly_fields = ["hint", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["rig", "name"] if obj is None else ["rig", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # A token's rig is what it may do: a token for another rig is a new token, with a new key.
        return [] if obj is None else ["rig", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        key = None if change else obj.set_new_key()
        super().save_model(request, obj, form, change)
        if key is not None:
            messages.warning(
                request,
                f"The key of token {obj.hint}… for rig {obj.rig.name!r}, shown this once "
                f"(only its hash is stored): {key}",
            )

    @admin.action(description="Revoke the selected tokens (they stop working at once)")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
