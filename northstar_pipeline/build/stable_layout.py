"""The stable scorecard path laid out so that a reader who opens it twice never reads a torn file.

`pyarrow.parquet.read_table(path)` (and pandas over it) opens the path, reads the footer, closes
it, opens the path again and reads the column chunks at the offsets of the footer it read first.
When a publish renames a new file over the path between the two opens, the second open sees other
bytes at those offsets ("Page was smaller than expected"). A rename cannot be avoided, so the new
file keeps the previous version's column chunks byte for byte at their offsets and puts its own
chunks where the previous version has none:

- in front of them (just after the leading magic) when they fit there: the new footer already
  holds the right offsets;
- otherwise behind them: every offset in the new footer is shifted by the distance moved.

The footer is Thrift compact protocol; `shift_offsets` walks it generically (the encoding is
self-describing) and re-encodes only the offset fields, copying every other byte as it is. The
file is valid Parquet: readers locate everything through the footer, and bytes no footer points
at are ignored. Two versions are kept in the file at most, so its size stays within about three
versions; a reader whose two opens straddle two publishes (two whole builds) is not covered.
"""

from __future__ import annotations

from dataclasses import dataclass

MAGIC = b"PAR1"

# Thrift compact protocol type ids (field headers and list/set/map element types).
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# Offsets (absolute file positions) in the Parquet footer, by struct and field id (parquet.thrift).
# FileMetaData.row_groups = 4 -> RowGroup; RowGroup.columns = 1 -> ColumnChunk; ColumnChunk.meta_data = 3.
_FILE_METADATA, _ROW_GROUP, _COLUMN_CHUNK, _COLUMN_METADATA = "FileMetaData", "RowGroup", "ColumnChunk", "ColumnMetaData"
_CHILDREN = {(_FILE_METADATA, 4): _ROW_GROUP, (_ROW_GROUP, 1): _COLUMN_CHUNK, (_COLUMN_CHUNK, 3): _COLUMN_METADATA}
_OFFSETS = {
    (_ROW_GROUP, 5),  # file_offset
    (_COLUMN_CHUNK, 2),  # file_offset
    (_COLUMN_CHUNK, 4),  # offset_index_offset
    (_COLUMN_CHUNK, 6),  # column_index_offset
    (_COLUMN_METADATA, 9),  # data_page_offset
    (_COLUMN_METADATA, 10),  # index_page_offset
    (_COLUMN_METADATA, 11),  # dictionary_page_offset
    (_COLUMN_METADATA, 14),  # bloom_filter_offset
}
# The byte ranges a reader may read: (struct, offset field, length field); chunks: total_compressed_size (7).
_RANGES = {(_COLUMN_CHUNK, 4): 5, (_COLUMN_CHUNK, 6): 7, (_COLUMN_METADATA, 14): 15}


class LayoutError(ValueError):
    """The bytes are not a Parquet file this module can lay out (the caller then writes the new file as it is)."""


@dataclass(frozen=True)
class Split:
    body: bytes  # everything between the leading magic and the footer: column chunks (and page indexes)
    footer: bytes  # the Thrift FileMetaData

    @property
    def body_start(self) -> int:
        return len(MAGIC)


def split_file(data: bytes) -> Split:
    """A Parquet file's body and footer."""
    if len(data) < 12 or data[:4] != MAGIC or data[-4:] != MAGIC:
        raise LayoutError("not a Parquet file")
    length = int.from_bytes(data[-8:-4], "little")
    if length <= 0 or length > len(data) - 12:
        raise LayoutError("bad footer length")
    return Split(body=data[4:-8 - length], footer=data[-8 - length:-8])


def referenced_span(footer: bytes) -> tuple[int, int]:
    """The first and past-the-last byte any reader of this footer reads (column chunks, page indexes, blooms)."""
    spans: list[tuple[int, int]] = []
    _walk_struct(_Reader(footer), _FILE_METADATA, shift=0, out=None, spans=spans)
    if not spans:
        raise LayoutError("the footer points at no data")
    return min(s for s, _ in spans), max(e for _, e in spans)


def shift_offsets(footer: bytes, shift: int) -> bytes:
    """The same footer with every absolute offset moved by ``shift`` bytes; all else byte-identical."""
    out = bytearray()
    reader = _Reader(footer)
    _walk_struct(reader, _FILE_METADATA, shift=shift, out=out, spans=[])
    if reader.pos != len(footer):
        raise LayoutError("trailing bytes after the footer's struct")
    return bytes(out)


def lay_out(previous: bytes | None, new: bytes, max_growth: float = 4.0) -> bytes:
    """The bytes to publish at the stable path: ``new``, keeping ``previous``'s column chunks at their offsets.

    Falls back to ``new`` as it is when ``previous`` is missing or not laid out by a Parquet writer we
    can read, or when keeping it would make the file more than ``max_growth`` times ``new``.
    """
    fresh = split_file(new)
    if previous is None:
        return new
    try:
        old = split_file(previous)
        start, end = referenced_span(old.footer)
        if end > len(previous) - 8 - len(old.footer) or start < len(MAGIC):
            raise LayoutError("the footer points outside the file's body")
    except LayoutError:
        return new
    tail = len(fresh.footer).to_bytes(4, "little") + MAGIC
    front_end = len(MAGIC) + len(fresh.body)
    if front_end <= start:  # the new chunks fit before the previous ones: the offsets are already right
        laid = MAGIC + fresh.body + previous[front_end:end] + fresh.footer + tail
    else:  # behind the previous chunks: every offset moves by the same distance
        footer = shift_offsets(fresh.footer, end - len(MAGIC))
        laid = previous[:end] + fresh.body + footer + len(footer).to_bytes(4, "little") + MAGIC
    return laid if len(laid) <= max_growth * len(new) else new


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise LayoutError("the footer ends inside a value")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise LayoutError("varint too long")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise LayoutError("the footer ends inside a value")
        self.pos += n


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _unzigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def _walk_struct(r: _Reader, struct: str | None, shift: int, out: bytearray | None, spans: list) -> None:
    """Copy one struct from ``r`` to ``out``, shifting the offset fields of known structs."""
    field_id = 0
    values: dict[int, int] = {}
    while True:
        start = r.pos
        header = r.byte()
        if header == 0:  # stop
            if out is not None:
                out.append(0)
            break
        kind, delta = header & 0x0F, header >> 4
        field_id = field_id + delta if delta else _zigzag(r.varint())
        if out is not None:
            out += r.data[start:r.pos]
        if kind == _I64 and struct is not None and (struct, field_id) in _OFFSETS:
            value = _zigzag(r.varint())
            values[field_id] = value
            if out is not None:
                out += _varint(_unzigzag(value + shift) & (2**64 - 1))
            continue
        if kind in (_I16, _I32, _I64):  # kept: the lengths that go with the offsets
            value_start = r.pos
            values[field_id] = _zigzag(r.varint())
            if out is not None:
                out += r.data[value_start:r.pos]
        else:
            _skip_value(r, kind, _CHILDREN.get((struct, field_id)) if struct else None, shift, out, spans,
                        in_field=True)
    if struct == _COLUMN_METADATA:
        first = values.get(11) if values.get(11) is not None else values.get(9)
        if first is not None and values.get(7) is not None:  # the chunk: dictionary (or first data) page on
            spans.append((first, first + values[7]))
    for (owner, offset_field), length_field in _RANGES.items():
        if owner == struct and offset_field in values and length_field in values:
            spans.append((values[offset_field], values[offset_field] + values[length_field]))


def _skip_value(r: _Reader, kind: int, child: str | None, shift: int, out: bytearray | None, spans: list,
                in_field: bool) -> None:
    """Copy one value of ``kind``; structs recurse (lists of structs keep ``child`` as their element type)."""
    start = r.pos
    if kind in (_TRUE, _FALSE):
        if not in_field:  # in a list a bool is a byte of its own; in a field it is the header's type
            r.skip(1)
    elif kind == _BYTE:
        r.skip(1)
    elif kind in (_I16, _I32, _I64):
        r.varint()
    elif kind == _DOUBLE:
        r.skip(8)
    elif kind == _BINARY:
        r.skip(r.varint())
    elif kind == _STRUCT:
        _walk_struct(r, child, shift, out, spans)
        return
    elif kind in (_LIST, _SET):
        header = r.byte()
        size, element = header >> 4, header & 0x0F
        if size == 15:
            size = r.varint()
        if out is not None:
            out += r.data[start:r.pos]
        for _ in range(size):
            _skip_value(r, element, child, shift, out, spans, in_field=False)
        return
    elif kind == _MAP:
        size = r.varint()
        types = r.byte() if size else 0
        if out is not None:
            out += r.data[start:r.pos]
        for _ in range(size):
            _skip_value(r, types >> 4, None, shift, out, spans, in_field=False)
            _skip_value(r, types & 0x0F, None, shift, out, spans, in_field=False)
        return
    else:
        raise LayoutError(f"unknown Thrift type {kind}")
    if out is not None:
        out += r.data[start:r.pos]
