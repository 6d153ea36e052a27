"""Validation results (alerts): reading them in their one shape (`Episode.as_json`) with their acknowledgement."""

from sessions.models import ValidationResult


def results_queryset():
    """Results with what their JSON shape needs, newest first."""
    return ValidationResult.objects.select_related("sensor", "acknowledged_by").order_by("-last_timestamp", "-id")


def result_json(result: ValidationResult) -> dict:
    """A stored result in the shape the ingest answer and the live feed give it, plus its acknowledgement.

    `result` needs its sensor and acknowledged_by loaded (see results_queryset).
    """
    return {
        **result.episode().as_json(session_id=result.session_id),
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
