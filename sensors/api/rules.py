"""The `/api/v1/rules/` resource: stored validation rules, edited by staff."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from robotest_site.api.errors import error_responses
from robotest_site.api.filters import BooleanFilter, IdFilter, existing
from robotest_site.api.permissions import IsStaffOrReadOnly
from sensors.api.serializers import ValidationRuleSerializer
from sensors.models import Sensor, ValidationRule


class RuleFilter(filters.FilterSet):
    sensor_type = filters.CharFilter(help_text="Rules for every sensor of this type.")
    sensor = IdFilter(
        method=existing("sensor", Sensor, "pk", "sensor_id"), help_text="Rules for this one sensor (id); unknown is a 404."
    )
    enabled = BooleanFilter()
    code = filters.CharFilter()
    kind = filters.ChoiceFilter(choices=ValidationRule.Kind.choices)

    class Meta:
        model = ValidationRule
        fields = ["sensor_type", "sensor", "enabled", "code", "kind"]

_APPLIES = (
    "A change applies to sessions started after it: a session keeps the rule snapshot it started "
    "with (see `rules` in a session's detail)."
)


_RULE = ValidationRuleSerializer
_WRITE_ERRORS = error_responses(_400="a bad field, named in the message", _403="not staff", _404="no such rule")


@extend_schema_view(
    list=extend_schema(
        summary="Stored validation rules", description=_APPLIES,
        responses={200: _RULE(many=True), **error_responses(_400="a bad parameter", _404="an unknown sensor or page")},
    ),
    retrieve=extend_schema(summary="One stored validation rule", responses={200: _RULE, **error_responses(_404="no such rule")}),
    create=extend_schema(
        summary="Add a rule, or replace a default one by its code (staff)", description=_APPLIES,
        responses={201: _RULE, **error_responses(_400="a bad field, named in the message", _403="not staff")},
    ),
    update=extend_schema(summary="Replace a rule (staff)", description=_APPLIES, responses={200: _RULE, **_WRITE_ERRORS}),
    partial_update=extend_schema(summary="Change a rule (staff)", description=_APPLIES, responses={200: _RULE, **_WRITE_ERRORS}),
    destroy=extend_schema(
        summary="Delete a rule (staff)", description=_APPLIES,
        responses={204: None, **error_responses(_403="not staff", _404="no such rule")},
    ),
)
class ValidationRuleViewSet(viewsets.ModelViewSet):
    """Stored validation rules: for a sensor type or one sensor; a rule with a default's code replaces it.

    Rules apply to sessions started after the change: a session keeps the snapshot it started
    with, so editing a rule never rewrites a recorded verdict.
    """

    queryset = ValidationRule.objects.select_related("sensor__rig")
    serializer_class = ValidationRuleSerializer
    permission_classes = [IsStaffOrReadOnly]
    filterset_class = RuleFilter
    ordering_fields = ["id", "code", "sensor_type", "kind", "enabled"]
    # Any segment reaches the view, which answers an id it does not know with a JSON 404.
    lookup_value_regex = "[^/]+"
