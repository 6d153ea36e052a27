"""PostgreSQL's binary forms built as numpy arrays: COPY rows and array parameters.

psycopg dumps a list parameter element by element in Python; at a thousand rollup cells and a
thousand results per flush that was most of those statements' time. Here a column goes to
PostgreSQL as one buffer made by numpy: fixed-size elements as a record array, text elements
as their bytes interleaved with fixed-size heads (`interleave`).
"""

import struct

import numpy as np
from psycopg.adapt import Dumper
from psycopg.pq import Format

# Element type OIDs (pg_type) and the OIDs of their array types.
_INT4, _INT8, _FLOAT8, _TEXT, _BOOL, _TIMESTAMPTZ = 23, 20, 701, 25, 16, 1184
_ARRAY_OID = {_INT4: 1007, _INT8: 1016, _FLOAT8: 1022, _TEXT: 1009, _BOOL: 1000, _TIMESTAMPTZ: 1185}
# PostgreSQL's binary timestamps count microseconds from 2000-01-01.
PG_EPOCH_US = 946_684_800 * 1_000_000
# Binary COPY's signature, flags and header extension; and the end of its data.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
COPY_TRAILER = struct.pack("!h", -1)


class ArrayParam(bytes):
    """A one-dimensional array parameter in PostgreSQL's binary form; `oid` is its array type's."""

    oid = 0


def _param_class(name: str, element_oid: int) -> type[ArrayParam]:
    cls = type(name, (ArrayParam,), {"oid": _ARRAY_OID[element_oid], "element_oid": element_oid})
    dumper = type(f"{name}Dumper", (Dumper,), {"format": Format.BINARY, "oid": cls.oid, "dump": _dump})
    cls.dumper = dumper
    return cls


def _dump(self, obj: bytes) -> bytes:
    return obj


Int4Array = _param_class("Int4Array", _INT4)
Int8Array = _param_class("Int8Array", _INT8)
Float8Array = _param_class("Float8Array", _FLOAT8)
TextArray = _param_class("TextArray", _TEXT)
BoolArray = _param_class("BoolArray", _BOOL)
TimestamptzArray = _param_class("TimestamptzArray", _TIMESTAMPTZ)
PARAM_CLASSES = (Int4Array, Int8Array, Float8Array, TextArray, BoolArray, TimestamptzArray)

_FIXED = {Int4Array: ">i4", Int8Array: ">i8", Float8Array: ">f8", BoolArray: "u1", TimestamptzArray: ">i8"}


def register(cursor) -> None:
    """Teach a psycopg cursor to send the array parameters of this module."""
    for cls in PARAM_CLASSES:
        cursor.adapters.register_dumper(cls, cls.dumper)


def _header(cls: type[ArrayParam], n: int) -> bytes:
    if not n:
        return struct.pack("!iii", 0, 0, cls.element_oid)
    return struct.pack("!iiiii", 1, 0, cls.element_oid, n, 1)


def fixed_array(cls: type[ArrayParam], values) -> ArrayParam:
    """A column of fixed-size elements (ints, floats, bools; timestamps as Unix µs) as one parameter."""
    values = np.asarray(values)
    kind = _FIXED[cls]
    elements = np.empty(len(values), dtype=[("length", ">i4"), ("value", kind)])
    elements["length"] = np.dtype(kind).itemsize
    elements["value"] = values - PG_EPOCH_US if cls is TimestamptzArray else values
    return cls(_header(cls, len(values)) + elements.tobytes())


def text_array(texts: list[str]) -> TextArray:
    """A column of text as one parameter."""
    head = np.empty(len(texts), dtype=[("length", ">i4")])
    body, lengths = utf8(texts)
    head["length"] = lengths
    return TextArray(_header(TextArray, len(texts)) + interleave(head, body, lengths))


def copy_rows(columns: list[tuple[str, str, object]], texts: list[str], *, jsonb: bool = False) -> bytes:
    """Binary COPY of rows: fixed-size fields (name, numpy type, one value or one a row), then a text.

    Each record's fixed part is one numpy record (the field count, each field's length and value,
    the text's length), its text after it. `jsonb`: the text is a jsonb's, whose binary form is a
    version byte (1) before the JSON.
    """
    body, lengths = utf8(texts)
    layout = [("fields", ">i2")]
    for name, kind, _ in columns:
        layout += [(f"{name}_len", ">i4"), (name, kind)]
    layout.append(("text_len", ">i4"))
    if jsonb:
        layout.append(("version", "u1"))
    records = np.empty(len(texts), dtype=layout)
    records["fields"] = len(columns) + 1
    for name, kind, values in columns:
        records[f"{name}_len"] = np.dtype(kind).itemsize
        records[name] = values
    records["text_len"] = lengths + 1 if jsonb else lengths
    if jsonb:
        records["version"] = 1
    return COPY_HEADER + interleave(records, body, lengths) + COPY_TRAILER


def utf8(texts: list[str]) -> tuple[bytes, np.ndarray]:
    """The texts' UTF-8 bytes, joined, beside each one's length in bytes."""
    body = "".join(texts).encode()
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if len(body) != lengths.sum():  # not all ASCII: lengths in bytes
        lengths = np.fromiter((len(text.encode()) for text in texts), dtype=np.int64, count=len(texts))
    return body, lengths


def interleave(heads: np.ndarray, body: bytes, lengths: np.ndarray) -> bytes:
    """Each record of `heads` followed by its part of `body` (`lengths` bytes each), in one buffer."""
    n = len(heads)
    fixed = heads.dtype.itemsize
    out = np.empty(n * fixed + len(body), dtype=np.uint8)
    # Byte j of the body lands after the heads of its own record and of every record before it.
    body_at = np.arange(len(body)) + np.repeat(np.arange(1, n + 1) * fixed, lengths)
    is_body = np.zeros(len(out), dtype=bool)
    is_body[body_at] = True
    out[body_at] = np.frombuffer(body, dtype=np.uint8)
    out[~is_body] = heads.view(np.uint8).reshape(-1)
    return out.tobytes()
