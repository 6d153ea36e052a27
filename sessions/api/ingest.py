"""`POST /api/v1/sessions/<id>/readings/`: a batch of readings from an external rig."""

from rest_framework import status
from rest_framework.response import Response

from sessions import services
from sessions.api.lookups import session_or_404
from sessions.recording.ingest import BatchError


def ingest_response(request, session_id: int) -> Response:
    """201 with what was stored; 400 naming every bad item; 409 when the session takes no readings."""
    session = session_or_404(session_id)
    try:
        result = services.readings_ingest(session=session, data=request.data)
    except BatchError as exc:
        return Response({"detail": exc.detail, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    except services.IngestRefused as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return Response(
        {"accepted": result.accepted, "first_seq": result.first_seq, "last_seq": result.last_seq,
         "validation": result.validation},
        status=status.HTTP_201_CREATED,
    )
