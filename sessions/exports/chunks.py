"""Chunked streaming under daphne: ~64 KB chunks with a real await between them, and COPY TO STDOUT.

Under daphne an async generator is sent as it goes only if it really awaits (STYLE "Known traps"),
so every export yields chunks of about 64 KB and `await asyncio.sleep(0)` after each one.
"""

import asyncio
import collections
import logging
import struct
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator

from django.db import connection, transaction
from django.utils import timezone

from sessions.recording.binary import COPY_HEADER

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# Chunks a COPY may read ahead of the client: the producer thread blocks beyond that.
QUEUE_CHUNKS = 4


async def rechunk(pieces: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Small pieces (a row, a record) regrouped into ~64 KB chunks, yielding to the loop after each."""
    parts: list[bytes] = []
    size = 0
    async for piece in pieces:
        parts.append(piece)
        size += len(piece)
        if size >= CHUNK_BYTES:
            yield b"".join(parts)
            parts, size = [], 0
            await asyncio.sleep(0)
    if parts:
        yield b"".join(parts)


# A COPY row of many readings (one string_agg per slice of time): psycopg hands Python one row at
# a time, at 0.5 µs or more each, which was most of a fast export's Python time. A slice holds
# about BLOCK_READINGS at the session's mean rate, never more than one second of readings (a
# session's count may lag behind its readings while it records) nor less than a millisecond.
BLOCK_READINGS = 1000
# The microseconds of `r.timestamp` since 1970, exactly: seconds and microseconds apart, never one float.
MICROS_SQL = ("(date_part('epoch', date_trunc('second', r.timestamp))::int8 * 1000000"
              " + date_part('microseconds', r.timestamp)::int8 %% 1000000)")
_LENGTH = struct.Struct("!i")


def blocks_copy(*, reading: str, aggregates: str, columns: str) -> str:
    """`COPY … TO STDOUT (FORMAT binary)` of one row per block: `aggregates` over the rows of a slice
    of time, in (timestamp, id) order, each row's `columns` (SQL over `r`, the session's readings;
    the parameters `session` and `width`, block_width's)."""
    return (
        f"COPY (SELECT {aggregates} FROM ("
        f" SELECT {MICROS_SQL} / %(width)s AS block, {columns}"
        f" FROM {reading} r WHERE r.session_id = %(session)s"
        # The sort carries each row's text, written below it (in PostgreSQL's parallel workers);
        # string_agg takes the rows of a block in this order.
        " ORDER BY 1, r.timestamp, r.id OFFSET 0"
        ") b GROUP BY b.block ORDER BY b.block) TO STDOUT WITH (FORMAT binary)"
    )


def block_width(session) -> int:
    """Microseconds of a block's slice of time for `session` (see BLOCK_READINGS)."""
    end = session.stopped_at or timezone.now()
    span = max(int((end - session.started_at).total_seconds() * 1e6), 1)
    return min(max(span * BLOCK_READINGS // max(session.reading_count, 1), 1000), 1_000_000)


def binary_fields(rows: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The fields of a binary COPY's rows (none NULL): the file header and the trailer left out."""
    for row in rows:
        row = bytes(row)
        if row.startswith(COPY_HEADER):
            row = row[len(COPY_HEADER):]  # signature, flags, no header extension: before the first row
        if len(row) <= 2:  # the trailer: -1 fields
            continue
        fields, at = [], 2
        while at < len(row):
            (size,) = _LENGTH.unpack_from(row, at)
            fields.append(row[at + 4:at + 4 + size])
            at += 4 + size
        yield fields


class _Abandoned(Exception):
    """The client went away: the producer stops its COPY."""


_END = object()


class CopyOut:
    """An async iterable of the bytes of a PostgreSQL `COPY (…) TO STDOUT`, in ~64 KB chunks.

    psycopg's COPY is sync and may run for seconds: it runs in a thread of its own on its own
    connection (never the one thread that runs every sync view), which hands finished chunks to
    the event loop, at most QUEUE_CHUNKS ahead of the client. The thread only waits when that
    many are waiting: a chunk is handed with `call_soon_threadsafe`, not a round trip to the
    loop per chunk (which kept the COPY idle while the loop was busy sending). `encode`, if
    given, turns the COPY's rows (one `bytes` each) into the export's bytes in that thread, and
    `tail` (run after the COPY, on the same connection) adds what follows them. When the client
    goes away (the generator is closed or cancelled) the thread cancels the COPY and closes its
    connection. `chunks_read` counts the chunks the thread has handed so far (the tests watch it).
    """

    def __init__(
        self,
        sql: str,
        params: dict | None = None,
        *,
        setup: tuple[str, ...] = (),
        encode: Callable[[Iterator[bytes]], Iterable[bytes]] | None = None,
        tail: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self.sql = sql
        self.params = params
        self.setup = setup
        self.encode = encode
        self.tail = tail
        self.chunks_read = 0
        self.finished = threading.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        items: collections.deque = collections.deque()
        ready = asyncio.Event()
        room = threading.Semaphore(QUEUE_CHUNKS)
        stop = threading.Event()

        def hand(item) -> None:
            # Blocks the producer while QUEUE_CHUNKS chunks wait; gives up once the consumer has gone.
            while not room.acquire(timeout=0.5):
                if stop.is_set() or loop.is_closed():
                    raise _Abandoned
            if stop.is_set():
                raise _Abandoned
            items.append(item)
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # the loop closed under the hand-over
                raise _Abandoned from None

        thread = threading.Thread(target=self._produce, args=(hand, stop), name="export-copy", daemon=True)
        thread.start()
        try:
            while True:
                while not items:
                    ready.clear()
                    if not items:  # a chunk handed between the test and the clear is not missed
                        await ready.wait()
                item = items.popleft()
                room.release()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
                await asyncio.sleep(0)
        finally:
            stop.set()

    def _produce(self, hand, stop: threading.Event) -> None:
        buffer = bytearray()

        def send(pieces: Iterable[bytes]) -> None:
            for piece in pieces:
                buffer.extend(piece)
                while len(buffer) >= 2 * CHUNK_BYTES:  # a big block goes in pieces: the client sees ~64 KB at a time
                    self.chunks_read += 1
                    hand(bytes(buffer[:CHUNK_BYTES]))
                    del buffer[:CHUNK_BYTES]
                    if stop.is_set():
                        raise _Abandoned
                if len(buffer) >= CHUNK_BYTES:
                    self.chunks_read += 1
                    hand(bytes(buffer))
                    buffer.clear()
                    if stop.is_set():
                        # Raised inside the COPY block so that psycopg cancels the COPY.
                        raise _Abandoned

        try:
            # One transaction: `setup`'s SET LOCALs end with it (a pooled connection keeps no setting).
            with transaction.atomic(), connection.cursor() as cursor:
                for statement in self.setup:
                    cursor.execute(statement)
                with connection.wrap_database_errors, cursor.cursor.copy(self.sql, self.params) as copy:
                    send(self.encode(iter(copy)) if self.encode else copy)
                if self.tail:
                    send(self.tail())
            if buffer:
                self.chunks_read += 1
                hand(bytes(buffer))
            hand(_END)
        except _Abandoned:
            logger.info("export abandoned by its client after %d chunks", self.chunks_read)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            logger.exception("export COPY failed")
            if not stop.is_set():
                try:
                    hand(exc)
                except _Abandoned:
                    pass
        finally:
            # This thread's own connection (Django's are per thread): never left open.
            connection.close()
            self.finished.set()
