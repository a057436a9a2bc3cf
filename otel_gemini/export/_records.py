"""The spool's record format: self-checking frames that a reader can resynchronise on.

    frame   = magic "OGSP" | kind u8 | 3 zero bytes | length u32 | seq u64 | crc32 u32 | payload
    kind 1  = span origin: origin id u32 | SpanOrigin bytes       (seq 0: not counted)
    kind 2  = span:        origin id u32 | framed OTLP span bytes (seq: 1, 2, 3, ... per spool)

All integers little-endian; the CRC covers kind, length, seq and payload. Span sequence
numbers are contiguous across a spool's whole life, so a reader that finds seq 41 after 37
knows exactly three spans were lost, whether to a flipped byte, a torn write or a
truncated file: corruption is counted by the gap, never guessed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

MAGIC = b"OGSP"
KIND_ORIGIN = 1
KIND_SPAN = 2
_HEADER = struct.Struct("<4sB3xIQI")
HEADER_SIZE = _HEADER.size
# A frame claiming more than this is corrupt (a span is bounded by the SDK's limits long
# before this), which keeps a flipped length byte from swallowing the rest of a file.
MAX_PAYLOAD = 64 * 1024 * 1024
_ID = struct.Struct("<I")


def encode_frame(kind: int, seq: int, payload: bytes) -> bytes:
    """One frame, header and payload."""
    checked = _HEADER.pack(MAGIC, kind, len(payload), seq, 0)[4:20]
    crc = zlib.crc32(payload, zlib.crc32(checked))
    return _HEADER.pack(MAGIC, kind, len(payload), seq, crc) + payload


def span_payload(origin_id: int, framed_span: bytes) -> bytes:
    return _ID.pack(origin_id) + framed_span


def origin_payload(origin_id: int, origin: bytes) -> bytes:
    return _ID.pack(origin_id) + origin


def split_payload(payload: bytes) -> tuple[int, bytes]:
    """(origin id, rest) of a span or origin payload; ``ValueError`` when too short."""
    if len(payload) < _ID.size:
        raise ValueError("payload shorter than its origin id")
    return _ID.unpack_from(payload)[0], payload[_ID.size :]


class Frame(NamedTuple):
    # A tuple, not a dataclass: the reader makes one per span, thousands per second.
    kind: int
    seq: int
    payload: bytes
    offset: int
    """Where the frame starts in its file."""
    end: int


@dataclass
class ParseResult:
    frames: list[Frame]
    end: int
    """File offset up to which the buffer was consumed (the start of an incomplete frame)."""
    damage: list[int]
    """File offsets where stretches of bytes that failed to parse begin (each stretch is
    skipped up to the next good frame)."""

    @property
    def damaged_regions(self) -> int:
        return len(self.damage)


def parse_frames(
    data: bytes, base: int = 0, *, at_eof: bool = True, max_spans: int | None = None
) -> ParseResult:
    """Parses every good frame in ``data`` (which starts at file offset ``base``).

    A frame that fails its checks is skipped by searching for the next magic. When
    ``at_eof`` is false, ``data`` is a window on a longer file: a frame running past the
    window stops the parse (read again from ``end``); at the end of the file it is damage.
    With ``max_spans``, parsing stops after that many span frames.
    """
    frames: list[Frame] = []
    damage: list[int] = []
    in_damage = False
    pos = 0
    size = len(data)
    unpack, crc32, append = _HEADER.unpack_from, zlib.crc32, frames.append
    while pos < size:
        if pos + HEADER_SIZE > size:
            if not at_eof:
                break
            if not in_damage:  # a torn header at the end of the file
                damage.append(base + pos)
            pos = size
            break
        magic, kind, length, seq, crc = unpack(data, pos)
        if magic == MAGIC and kind in (KIND_ORIGIN, KIND_SPAN) and length <= MAX_PAYLOAD:
            start = pos + HEADER_SIZE
            if start + length > size and not at_eof:
                break  # the rest of this frame is beyond the window
            if start + length <= size:
                payload = data[start : start + length]
                if crc32(payload, crc32(data[pos + 4 : pos + 20])) == crc:
                    append(Frame(kind, seq, payload, base + pos, base + start + length))
                    pos = start + length
                    in_damage = False
                    if kind == KIND_SPAN and max_spans is not None:
                        max_spans -= 1
                        if max_spans <= 0:
                            break
                    continue
        if not in_damage:
            damage.append(base + pos)
            in_damage = True
        next_magic = data.find(MAGIC, pos + 1)
        if next_magic >= 0:
            pos = next_magic
        elif at_eof:
            pos = size
        else:  # a magic may straddle the window's end: look at its last bytes again
            pos = max(pos + 1, size - len(MAGIC) + 1)
            break
    return ParseResult(frames, base + pos, damage)


def iter_span_frames(frames: list[Frame]) -> Iterator[Frame]:
    return (frame for frame in frames if frame.kind == KIND_SPAN)
