"""Validation results (alerts): reading them in the REST/WebSocket shape, and acknowledging one."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from sensors.rules import Episode
from sessions.models import ValidationResult
from sessions.recording.pipeline import episode_json


class AlreadyAcknowledged(Exception):
    """The result was acknowledged before; the first acknowledgement stands."""


def results_queryset():
    """Results with what their JSON shape needs, newest first."""
    return ValidationResult.objects.select_related("sensor", "acknowledged_by").order_by("-last_timestamp", "-id")


def result_json(result: ValidationResult) -> dict:
    """A stored result in the shape the ingest answer and the live feed give it, plus its acknowledgement.

    `result` needs its sensor and acknowledged_by loaded (see results_queryset).
    """
    episode = Episode(
        rule=result.rule, sensor=result.sensor.name, sensor_type=result.sensor.sensor_type, status=result.status,
        message=result.message, first_timestamp=result.first_timestamp.timestamp(),
        last_timestamp=result.last_timestamp.timestamp(), count=result.count, peak=result.peak,
        details=result.details, is_open=result.is_open, result_id=result.pk,
    )
    return {
        **episode_json(episode, session_id=result.session_id),
        "acknowledged": result.acknowledged_at is not None,
        "acknowledged_by": result.acknowledged_by.get_username() if result.acknowledged_by else None,
        "acknowledged_at": result.acknowledged_at.timestamp() if result.acknowledged_at else None,
        "acknowledge_comment": result.acknowledge_comment,
    }


def results_list(
    *, session_id: int | None = None, sensor_ids: list[int] | None = None, status: str | None = None, limit: int
) -> list[dict]:
    """At most `limit` results, newest (latest last reading) first."""
    qs = results_queryset()
    if session_id is not None:
        qs = qs.filter(session_id=session_id)
    if sensor_ids is not None:
        qs = qs.filter(sensor_id__in=sensor_ids)
    if status:
        qs = qs.filter(status=status)
    return [result_json(r) for r in qs[:limit]]


def result_acknowledge(*, result_id: int, user: AbstractBaseUser, comment: str = "") -> ValidationResult:
    """Record who acknowledged a result, when, and why; AlreadyAcknowledged if someone did already.

    The first acknowledgement is kept: a second one would rewrite who took responsibility.
    """
    with transaction.atomic():
        result = results_queryset().select_for_update(of=("self",)).get(pk=result_id)
        if result.acknowledged_at is not None:
            raise AlreadyAcknowledged(result)
        result.acknowledged_by = user
        result.acknowledged_at = timezone.now()
        result.acknowledge_comment = comment
        result.save(update_fields=["acknowledged_by", "acknowledged_at", "acknowledge_comment"])
    return result
