"""Chunked streaming under daphne: ~64 KB chunks with a real await between them, and COPY TO STDOUT.

Under daphne an async generator is sent as it goes only if it really awaits (STYLE "Known traps"),
so every export yields chunks of about 64 KB and `await asyncio.sleep(0)` after each one.
"""

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterable, AsyncIterator

from django.db import connection

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


class _Abandoned(Exception):
    """The client went away: the producer stops its COPY."""


_END = object()


class CopyOut:
    """An async iterable of the bytes of a PostgreSQL `COPY (…) TO STDOUT`, in ~64 KB chunks.

    psycopg's COPY is sync and may run for seconds: it runs in a thread of its own on its own
    connection (never the one thread that runs every sync view), which hands finished chunks to
    the event loop through a queue of QUEUE_CHUNKS. When the client goes away (the generator is
    closed or cancelled) the thread cancels the COPY and closes its connection.
    `chunks_read` counts the chunks the thread has read so far (the tests watch it).
    """

    def __init__(self, sql: str, params: dict | None = None, *, setup: tuple[str, ...] = ()) -> None:
        self.sql = sql
        self.params = params
        self.setup = setup
        self.chunks_read = 0
        self.finished = threading.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_CHUNKS)
        stop = threading.Event()

        def hand(item) -> None:
            # Blocks the producer while the queue is full; gives up once the consumer has gone.
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while True:
                try:
                    future.result(timeout=0.5)
                    return
                except concurrent.futures.CancelledError:
                    raise _Abandoned from None  # the loop shut down under the put
                except concurrent.futures.TimeoutError:
                    if stop.is_set() or loop.is_closed():
                        future.cancel()
                        raise _Abandoned from None

        thread = threading.Thread(target=self._produce, args=(hand, stop), name="export-copy", daemon=True)
        thread.start()
        try:
            while (item := await queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
                await asyncio.sleep(0)
        finally:
            stop.set()

    def _produce(self, hand, stop: threading.Event) -> None:
        try:
            with connection.cursor() as cursor:
                for statement in self.setup:
                    cursor.execute(statement)
                with connection.wrap_database_errors, cursor.cursor.copy(self.sql, self.params) as copy:
                    buffer = bytearray()
                    for data in copy:
                        buffer += data
                        if len(buffer) >= CHUNK_BYTES:
                            self.chunks_read += 1
                            hand(bytes(buffer))
                            buffer.clear()
                            if stop.is_set():
                                # Raised inside the block so that psycopg cancels the COPY.
                                raise _Abandoned
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
