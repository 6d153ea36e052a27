"""Filters shared by the resource lists: strict ordering, times as Unix seconds or ISO 8601, names that must exist."""

from django import forms
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter

from robotest_site.api import params


class StrictOrderingFilter(OrderingFilter):
    """`?ordering=a,-b` over the view's `ordering_fields`; an unknown field is a 400 naming `ordering`.

    DRF drops unknown fields silently, which hides a typo. The primary key is added last so
    pages never overlap or skip rows that tie.
    """

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if not raw:
            return self.get_default_ordering(view)
        fields = [part.strip() for part in raw.split(",") if part.strip()]
        valid = {name for name, _label in self.get_valid_fields(queryset, view, {"request": request})}
        unknown = [f for f in fields if f.lstrip("-") not in valid]
        if unknown or not fields:
            raise params.bad(
                self.ordering_param,
                f"unknown field {', '.join(unknown) or raw!r}; choose from {', '.join(sorted(valid))} (prefix - to reverse)",
            )
        if not any(f.lstrip("-") in ("id", "pk") for f in fields):
            fields.append("-id" if fields[-1].startswith("-") else "id")
        return fields


class _TimeField(forms.Field):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return params.timestamp(value)
        except ValueError as exc:
            # As a parameter: django-filter %-formats the message, and the text may hold a % of the input.
            raise forms.ValidationError("%(reason)s", params={"reason": str(exc)}) from None


@extend_schema_field(OpenApiTypes.STR)
class TimeFilter(filters.Filter):
    """A time as Unix seconds or ISO 8601 (naive means UTC), compared with `lookup_expr`."""

    field_class = _TimeField


def existing(what: str, model, lookup: str, target: str):
    """A filter method: `target=value`, or a 404 when no `model` row has `lookup=value`.

    A filter that names something missing is a 404 (docs/errors.md), not an empty list.
    """

    def method(queryset, name, value):
        if not model.objects.filter(**{lookup: value}).exists():
            raise NotFound(f"no {what} {value!r} ({name})")
        return queryset.filter(**{target: value})

    return method


class _BooleanField(forms.Field):
    _VALUES = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return self._VALUES[str(value).strip().lower()]
        except KeyError:
            raise forms.ValidationError("must be true or false, got %(value)r", params={"value": value}) from None


@extend_schema_field(OpenApiTypes.BOOL)
class BooleanFilter(filters.Filter):
    """`true`/`false` (or 1/0); anything else is a 400 (django-filter's own ignores it silently)."""

    field_class = _BooleanField


@extend_schema_field(OpenApiTypes.INT)
class IdFilter(filters.Filter):
    """A database id: a whole number in the range of a 64-bit key."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)
