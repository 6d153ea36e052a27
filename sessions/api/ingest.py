"""`POST /api/v1/sessions/<id>/readings/`: a batch of readings from an external rig."""

import hashlib
import re

from rest_framework import status
from rest_framework.response import Response

from sessions import services
from sessions.api.lookups import session_or_404
from sessions.recording.ingest import BatchError, batch_loads

IDEMPOTENCY_KEY = "Idempotency-Key"
_KEY = re.compile(r"[\x20-\x7e]{1,200}")


def ingest_response(request, session_id: int) -> Response:
    """201 with what was stored; 400 naming every bad item; 409 when the session takes no readings.

    With an `Idempotency-Key`, a retry gets the first answer (and `Idempotent-Replayed: true`);
    the key with another body is a 422 (docs/errors.md).
    """
    session = session_or_404(session_id)
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and not _KEY.fullmatch(key):
        return Response({"detail": _key_problem(key)}, status=status.HTTP_400_BAD_REQUEST)
    try:
        # The raw bytes, read before any parser (request.body is then kept for DRF's). A too large
        # body is the 413 of robotest_site/api/errors.py.
        raw = request.body
        digest = hashlib.sha256(raw).hexdigest() if key else ""
        if key:
            replay = services.ingest_replay(session=session, key=key, digest=digest)
            if replay is not None:
                return _answer(replay)
        answer = services.readings_ingest(session=session, data=_batch_data(request, raw), key=key or "", digest=digest)
    except BatchError as exc:
        return Response({"detail": exc.detail, "errors": exc.errors}, status=status.HTTP_400_BAD_REQUEST)
    except services.IngestRefused as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    except services.IngestKeyReused as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    return _answer(answer)


def _batch_data(request, raw: bytes) -> object:
    """A JSON body parsed here, not by DRF: DRF reads no body without a Content-Length (a chunked
    request; Django's `body` reads it whole, still within DATA_UPLOAD_MAX_MEMORY_SIZE), and keeps the
    last of two equal names in an object silently. Other media types as DRF parses them (a form is
    no list of readings: a 400; an unknown type: a 415)."""
    if request.content_type.partition(";")[0].strip().lower() == "application/json":
        return batch_loads(raw)
    return request.data


def _answer(answer: services.IngestAnswer) -> Response:
    response = Response(answer.body, status=answer.status)
    if answer.replayed:
        response["Idempotent-Replayed"] = "true"
    return response


def _key_problem(key: str) -> str:
    rule = f"{IDEMPOTENCY_KEY}: must be 1 to 200 printable ASCII characters"
    if not key:
        return f"{rule}, got an empty header"
    if len(key) > 200:
        return f"{rule}, got {len(key)}"
    position = next(i for i, char in enumerate(key) if not " " <= char <= "~")
    return f"{rule}, got {key[position]!r} at position {position}"
