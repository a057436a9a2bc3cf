"""The durable spool: append-only segment files in one slot directory, bounded by bytes.

Layout of a slot directory::

    lock                      flock held by the owning process (content: its pid)
    seg-0000000000000001.spool  frames (see _records.py); a new segment every few MB
    head                      seq of the last span written (lets a restart count a cut tail)
    cursor                    where sending stands: segment, offset, last resolved seq
    status.json               the owner's last ExportStats (for `otel-gemini health`)
    dead-letter/              spans Langfuse rejected with 400, as OTLP request files
    quarantine/               segment files that held no readable frame at all

Writes go to the newest segment with one ``write()`` per batch of spans (no Python-side
buffer, so neither a crash nor a fork can leave half a batch behind in memory); the
reader never reads past what the writer has finished. The sender resolves spans in order
and moves the cursor; a segment is deleted once the cursor has passed it. At the byte cap
the oldest segment goes, its unsent spans counted as dropped (``spool_full``).

A restart scans every segment: intact spans are queued again, and the spans missing
between consecutive sequence numbers (or between the last one found and ``head``) are
counted as ``corrupt``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from otel_gemini.export._accounting import DROP_SPOOL_ERROR, DROP_SPOOL_FULL, Accounting
from otel_gemini.export._otlp_wire import SpanOrigin, export_request
from otel_gemini.export._records import (
    HEADER_SIZE,
    KIND_ORIGIN,
    KIND_SPAN,
    MAGIC,
    encode_frame,
    origin_payload,
    parse_frames,
    span_payload,
    split_payload,
)

_logger = logging.getLogger(__name__)

SEGMENT_PATTERN = re.compile(r"^seg-(\d{16})\.spool$")
HEAD_FILE = "head"
CURSOR_FILE = "cursor"
STATUS_FILE = "status.json"
DEAD_LETTER_DIR = "dead-letter"
QUARANTINE_DIR = "quarantine"

_HEAD = struct.Struct("<4sQI")
_HEAD_MAGIC = b"OGHD"
_CURSOR = struct.Struct("<4sQQQI")
_CURSOR_MAGIC = b"OGCU"
_ORIGIN_ID = struct.Struct("<I")


def segment_name(seq: int) -> str:
    return f"seg-{seq:016d}.spool"


@dataclass
class _Segment:
    seq: int
    path: Path
    size: int
    """Bytes the reader may read: what the writer finished (a failed write is not counted)."""
    base_seq: int = 0
    """The seq of the last span written before this segment (its spans follow it)."""
    pending: int = 0
    """Span records in this segment not yet sent, dead-lettered or dropped."""
    last_seq: int = 0
    live: bool = True
    """Written by this process. Damage in a recovered segment was counted at recovery."""
    sealed: bool = False
    origins: dict[int, SpanOrigin] = field(default_factory=dict)
    origin_ids: dict[SpanOrigin, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Cursor:
    segment: int
    offset: int
    last_seq: int
    """The highest span seq resolved so far (0: none yet)."""


class SpoolSpan(NamedTuple):
    seq: int
    origin: SpanOrigin
    framed: bytes


@dataclass
class Batch:
    """A run of consecutive span records read from one segment."""

    segment: int
    start: int
    end: int
    last_seq: int
    spans: list[SpoolSpan]
    corrupt: int
    """Spans of this run found damaged (live segments only; counted when acked)."""

    @property
    def size(self) -> int:
        return sum(len(span.framed) for span in self.spans)


def _read_struct(path: Path, layout: struct.Struct, magic: bytes) -> tuple[int, ...] | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < layout.size:
        return None
    fields = layout.unpack_from(data)
    if fields[0] != magic or zlib.crc32(data[: layout.size - 4]) != fields[-1]:
        return None
    return tuple(fields[1:-1])


def _packed(layout: struct.Struct, magic: bytes, *values: int) -> bytes:
    body = layout.pack(magic, *values, 0)[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


class Spool:
    """The segment store of one locked slot directory. Thread-safe."""

    def __init__(
        self,
        directory: Path,
        accounting: Accounting,
        *,
        max_bytes: int,
        segment_bytes: int,
        dead_letter_max_bytes: int,
        fsync: bool = False,
    ) -> None:
        self.directory = directory
        self._accounting = accounting
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._fsync = fsync
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._active_fd: int | None = None
        self._head_fd: int | None = None
        self._cursor_fd: int | None = None
        self._cursor = Cursor(0, 0, 0)
        self._next_seq = 1
        self._last_segment_seq = 0
        self._total_bytes = 0
        self._opened = False

    # --- opening and recovery ---

    def open(self) -> None:
        """Recovers what an earlier owner left and prepares a fresh segment for writing."""
        with self._lock:
            self._recover()
            self._head_fd = os.open(self.directory / HEAD_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            self._cursor_fd = os.open(self.directory / CURSOR_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            self._start_segment_locked()
            self._persist_cursor_locked()
            self._opened = True

    def _recover(self) -> None:
        found: list[tuple[int, Path]] = []
        for entry in self.directory.iterdir():
            match = SEGMENT_PATTERN.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        found.sort()
        head = _read_struct(self.directory / HEAD_FILE, _HEAD, _HEAD_MAGIC)
        cursor_fields = _read_struct(self.directory / CURSOR_FILE, _CURSOR, _CURSOR_MAGIC)
        cursor = Cursor(*cursor_fields) if cursor_fields else None
        expected: int | None = cursor.last_seq + 1 if cursor else None
        intact = lost = 0
        highest = max(head[0] if head else 0, cursor.last_seq if cursor else 0)
        for seq, path in found:
            self._last_segment_seq = max(self._last_segment_seq, seq)
            if cursor is not None and seq < cursor.segment:
                self._delete(path)  # fully sent before the crash, not yet deleted
                continue
            start = cursor.offset if cursor is not None and seq == cursor.segment else 0
            try:
                data = path.read_bytes()
            except OSError as error:
                _logger.warning("Spool segment %s is unreadable (%s); skipping it", path, error)
                continue
            parsed = parse_frames(data)
            if not parsed.frames and data:
                self._quarantine(path)
                continue
            segment = _Segment(seq, path, len(data), live=False, sealed=True)
            for frame in parsed.frames:
                try:
                    origin_id, body = split_payload(frame.payload)
                except ValueError:
                    continue
                if frame.kind == KIND_ORIGIN:
                    with contextlib.suppress(ValueError):
                        segment.origins[origin_id] = SpanOrigin.from_bytes(body)
                    continue
                highest = max(highest, frame.seq)
                if frame.offset < start:
                    continue
                if expected is None:
                    expected = frame.seq
                if frame.seq < expected:
                    continue  # already resolved (a cursor ahead of an old copy)
                if not segment.pending and not segment.base_seq:
                    segment.base_seq = frame.seq - 1
                lost += frame.seq - expected
                expected = frame.seq + 1
                if origin_id in segment.origins:
                    intact += 1
                    segment.pending += 1
                else:
                    lost += 1
                segment.last_seq = frame.seq
            if parsed.damaged_regions:
                _logger.warning(
                    "Spool segment %s has %d damaged region(s); intact spans will be sent",
                    path,
                    parsed.damaged_regions,
                )
            if segment.pending:
                self._segments.append(segment)
                self._total_bytes += segment.size
            else:
                self._delete(path)
        if head is not None and expected is not None and head[0] >= expected:
            lost += head[0] - expected + 1  # the newest spans were cut off
        self._next_seq = max(highest, (expected or 1) - 1) + 1
        if self._segments:
            first = self._segments[0]
            offset = cursor.offset if cursor is not None and cursor.segment == first.seq else 0
            self._cursor = Cursor(first.seq, offset, first.base_seq)
        else:
            self._cursor = Cursor(self._last_segment_seq + 1, 0, self._next_seq - 1)
        if intact or lost:
            _logger.info(
                "Spool %s: %d span(s) from an earlier run to send, %d lost to damage",
                self.directory,
                intact,
                lost,
            )
        self._accounting.recovered(intact, lost)
        self._accounting.disk_bytes(self._unsent_bytes_locked())

    def _quarantine(self, path: Path) -> None:
        target_dir = self.directory / QUARANTINE_DIR
        _logger.warning("Spool file %s holds no readable record; moving it to %s", path, target_dir)
        try:
            target_dir.mkdir(exist_ok=True)
            os.replace(path, target_dir / f"{path.name}.{time.time_ns()}")
        except OSError:
            self._delete(path)

    @staticmethod
    def _delete(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # --- writing ---

    def _start_segment_locked(self) -> None:
        if self._active_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._active_fd)
            self._active_fd = None
        if self._segments and not self._segments[-1].sealed:
            self._segments[-1].sealed = True
        self._last_segment_seq += 1
        seq = self._last_segment_seq
        path = self.directory / segment_name(seq)
        self._active_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o644)
        base = self._next_seq - 1
        self._segments.append(_Segment(seq, path, 0, base_seq=base, last_seq=base))
        self._collect_locked()

    def append(
        self,
        spans: Sequence[tuple[SpanOrigin, bytes]],
        *,
        memory_spans: int,
        memory_bytes: int,
        dropped: dict[str, int],
    ) -> OSError | None:
        """Writes framed spans (with the origins they need) and makes them readable.

        The accounting moves ``memory_spans`` out of memory in the same step: what was
        written to disk, ``dropped`` as given, and anything a failed write lost as
        ``spool_error`` (the error is returned; whatever part of the call was written
        before it stays readable).
        """
        with self._lock:
            written = 0
            failure: OSError | None = None
            try:
                if not self._opened:
                    raise OSError("the spool is not open")
                while written < len(spans):
                    written = self._append_some_locked(spans, written)
            except OSError as error:
                failure = error
            lost = dict(dropped)
            if written < len(spans):
                lost[DROP_SPOOL_ERROR] = lost.get(DROP_SPOOL_ERROR, 0) + len(spans) - written
            self._accounting.left_memory(
                memory_spans, memory_bytes, persisted=written, dropped=lost
            )
            if written and self._head_fd is not None:
                with contextlib.suppress(OSError):
                    os.pwrite(self._head_fd, _packed(_HEAD, _HEAD_MAGIC, self._next_seq - 1), 0)
            self._enforce_cap_locked()
            self._accounting.disk_bytes(self._unsent_bytes_locked())
            return failure

    def _append_some_locked(self, spans: Sequence[tuple[SpanOrigin, bytes]], index: int) -> int:
        segment = self._segments[-1]
        if segment.size >= self._segment_bytes:
            self._start_segment_locked()
            segment = self._segments[-1]
        buffer = bytearray()
        room = self._segment_bytes - segment.size
        new_origins: list[tuple[int, SpanOrigin]] = []
        first_seq = self._next_seq
        seq = first_seq
        while index < len(spans) and (len(buffer) < room or not buffer):
            origin, framed = spans[index]
            origin_id = segment.origin_ids.get(origin)
            if origin_id is None:
                origin_id = len(segment.origins) + len(new_origins) + 1
                new_origins.append((origin_id, origin))
                buffer += encode_frame(KIND_ORIGIN, 0, origin_payload(origin_id, origin.to_bytes()))
                segment.origin_ids[origin] = origin_id
            buffer += encode_frame(KIND_SPAN, seq, span_payload(origin_id, framed))
            seq += 1
            index += 1
        assert self._active_fd is not None
        try:
            self._write_all(self._active_fd, bytes(buffer))
            if self._fsync:
                os.fsync(self._active_fd)
        except OSError:
            for _, origin in new_origins:
                segment.origin_ids.pop(origin, None)
            # Cut what part of the write landed, then seal: the next write starts clean.
            with contextlib.suppress(OSError):
                os.ftruncate(self._active_fd, segment.size)
            self._start_segment_locked()
            raise
        for origin_id, origin in new_origins:
            segment.origins[origin_id] = origin
        written = seq - first_seq
        self._next_seq = seq
        segment.size += len(buffer)
        segment.pending += written
        segment.last_seq = seq - 1
        self._total_bytes += len(buffer)
        return index

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def _enforce_cap_locked(self) -> None:
        while self._total_bytes > self.max_bytes and len(self._segments) > 1:
            oldest = self._segments.pop(0)
            self._total_bytes -= oldest.size
            if oldest.pending:
                self._accounting.dropped_from_disk(DROP_SPOOL_FULL, oldest.pending)
            if self._cursor.segment <= oldest.seq:
                self._enter_locked(self._segments[0])
                self._persist_cursor_locked()  # before the delete: a crash never shows a gap
            self._delete(oldest.path)
            if not oldest.pending:
                continue
            _logger.warning(
                "Spool %s is full (%d bytes): dropped %d unsent span(s), oldest first",
                self.directory,
                self.max_bytes,
                oldest.pending,
            )

    # --- reading and acknowledging ---

    def read_batch(self, max_spans: int, max_bytes: int) -> Batch | None:
        """The next run of unsent spans from the cursor (None when there is nothing)."""
        with self._lock:
            while True:
                segment = self._cursor_segment_locked()
                if segment is None:
                    return None
                if self._cursor.offset < segment.size:
                    return self._read_locked(segment, max_spans, max_bytes)
                if not segment.sealed:
                    return None
                self._collect_locked()

    def _cursor_segment_locked(self) -> _Segment | None:
        for segment in self._segments:
            if segment.seq == self._cursor.segment:
                return segment
        return None

    def _read_locked(self, segment: _Segment, max_spans: int, max_bytes: int) -> Batch:
        start = self._cursor.offset
        window = min(max_bytes, segment.size - start)
        with open(segment.path, "rb") as file:
            file.seek(start)
            data = file.read(window)
            if len(data) >= HEADER_SIZE and data[:4] == MAGIC:
                # A record larger than the window (one huge span) is read whole.
                (length,) = struct.unpack_from("<I", data, 8)
                whole = HEADER_SIZE + length
                if window < whole <= segment.size - start:
                    data += file.read(whole - window)
        at_eof = start + len(data) >= segment.size
        parsed = parse_frames(data, start, at_eof=at_eof, max_spans=max_spans)
        spans: list[SpoolSpan] = []
        corrupt = 0
        expected = self._cursor.last_seq + 1
        last_seq = self._cursor.last_seq
        end = start
        complete = True
        origins, live, unpack_id = segment.origins, segment.live, _ORIGIN_ID.unpack_from
        for kind, seq, payload, _, frame_end in parsed.frames:
            if kind == KIND_SPAN:
                if len(spans) + corrupt >= max_spans:
                    complete = False
                    break
                if live and seq > expected:
                    corrupt += seq - expected  # frames lost between two good ones
                if seq >= expected:
                    expected = seq + 1
                    last_seq = seq
                origin = origins.get(unpack_id(payload)[0]) if len(payload) >= 4 else None
                if origin is None:
                    corrupt += 1 if live else 0
                else:
                    spans.append(SpoolSpan(seq, origin, payload[4:]))
            end = frame_end
        if complete:
            end = max(end, parsed.end)
        if end <= start:  # nothing parsable in the window: step over it
            end = min(segment.size, start + max(window, 1))
        return Batch(segment.seq, start, end, last_seq, spans, corrupt)

    def ack(self, batch: Batch, *, sent: int, dead_lettered: int) -> bool:
        """Marks ``batch`` resolved and moves the cursor past it.

        False when the batch no longer exists (its segment was dropped to make room while it
        was in flight; its spans were then counted as dropped).
        """
        with self._lock:
            if (self._cursor.segment, self._cursor.offset) != (batch.segment, batch.start):
                return False
            segment = self._cursor_segment_locked()
            resolved = sent + dead_lettered + batch.corrupt
            if segment is not None:
                segment.pending -= len(batch.spans) + batch.corrupt
            self._cursor = Cursor(
                batch.segment, batch.end, max(batch.last_seq, self._cursor.last_seq)
            )
            self._accounting.resolved_from_disk(
                sent=sent, dead_lettered=dead_lettered, corrupt=batch.corrupt
            )
            if resolved != len(batch.spans) + batch.corrupt:
                _logger.error("Spool accounting mismatch acking a batch (a bug)")
            self._collect_locked()
            self._persist_cursor_locked()
            self._accounting.disk_bytes(self._unsent_bytes_locked())
            return True

    def _enter_locked(self, segment: _Segment) -> None:
        last_seq = segment.base_seq
        if not segment.live:
            last_seq = max(last_seq, self._cursor.last_seq)
        self._cursor = Cursor(segment.seq, 0, last_seq)

    def _collect_locked(self) -> None:
        """Deletes sealed segments the cursor has passed; moves it to the next segment."""
        while self._segments:
            segment = self._segments[0]
            if segment.seq > self._cursor.segment:
                self._enter_locked(segment)
                break
            passed = segment.seq < self._cursor.segment or self._cursor.offset >= segment.size
            if not (passed and segment.sealed):
                break
            self._segments.pop(0)
            self._total_bytes -= segment.size
            self._delete(segment.path)

    def _unsent_bytes_locked(self) -> int:
        # Segments before the cursor's are gone, so only its own sent prefix is subtracted.
        return max(0, self._total_bytes - self._cursor.offset)

    def _persist_cursor_locked(self) -> None:
        if self._cursor_fd is None:
            return
        cursor = self._cursor
        data = _packed(_CURSOR, _CURSOR_MAGIC, cursor.segment, cursor.offset, cursor.last_seq)
        with contextlib.suppress(OSError):
            os.pwrite(self._cursor_fd, data, 0)

    # --- dead letters and status ---

    def dead_letter(self, spans: Sequence[SpoolSpan], status: int) -> None:
        """Keeps spans Langfuse rejected as one OTLP request file, within a byte budget."""
        directory = self.directory / DEAD_LETTER_DIR
        groups: dict[SpanOrigin, list[bytes]] = {}
        for span in spans:
            groups.setdefault(span.origin, []).append(span.framed)
        body = export_request(groups.items())
        try:
            directory.mkdir(exist_ok=True)
            path = directory / f"dl-{time.time_ns()}-http{status}-{len(spans)}.otlp"
            path.write_bytes(body)
            files = sorted(directory.glob("dl-*.otlp"))
            total = sum(file.stat().st_size for file in files)
            for file in files[:-1]:
                if total <= self._dead_letter_max_bytes:
                    break
                total -= file.stat().st_size
                self._delete(file)
        except OSError as error:
            _logger.warning("Could not keep dead-lettered spans in %s: %s", directory, error)

    def write_status(self, status: dict[str, object]) -> None:
        """Replaces ``status.json`` atomically (best effort)."""
        path = self.directory / STATUS_FILE
        temporary = path.with_suffix(".tmp")
        try:
            temporary.write_text(json.dumps(status, sort_keys=True))
            os.replace(temporary, path)
        except OSError:
            pass

    # --- state ---

    @property
    def pending_spans(self) -> int:
        with self._lock:
            return sum(segment.pending for segment in self._segments)

    @property
    def last_written_seq(self) -> int:
        with self._lock:
            return self._next_seq - 1

    @property
    def resolved_through(self) -> int:
        """The highest span seq resolved (sent, dead-lettered or dropped)."""
        with self._lock:
            return self._cursor.last_seq

    def close(self) -> None:
        """Closes files; a segment whose spans were all sent is deleted."""
        with self._lock:
            if self._opened and len(self._segments) == 1:
                last = self._segments[0]
                if not last.pending and self._cursor.segment == last.seq:
                    self._cursor = Cursor(last.seq + 1, 0, self._cursor.last_seq)
                    self._persist_cursor_locked()
                    self._delete(last.path)
            self._opened = False
            for fd in (self._active_fd, self._head_fd, self._cursor_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._active_fd = self._head_fd = self._cursor_fd = None

    def forget_in_child(self) -> None:
        """In a forked child: close inherited descriptors without touching any file."""
        for fd in (self._active_fd, self._head_fd, self._cursor_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._active_fd = self._head_fd = self._cursor_fd = None
        self._opened = False


@dataclass(frozen=True)
class Backlog:
    """What a slot directory holds, read without changing anything (for the health CLI)."""

    spans: int
    bytes: int
    segments: int
    dead_letter_files: int
    quarantined_files: int
    status: dict[str, object] | None
    """The owner's last ``status.json``, if readable."""


def read_backlog(directory: Path) -> Backlog:
    """Counts unsent spans in a slot directory (read-only; damaged records are skipped)."""
    cursor_fields = _read_struct(directory / CURSOR_FILE, _CURSOR, _CURSOR_MAGIC)
    cursor = Cursor(*cursor_fields) if cursor_fields else None
    spans = size = segments = 0
    for entry in sorted(directory.glob("seg-*.spool")):
        match = SEGMENT_PATTERN.match(entry.name)
        if match is None:
            continue
        seq = int(match.group(1))
        if cursor is not None and seq < cursor.segment:
            continue
        start = cursor.offset if cursor is not None and seq == cursor.segment else 0
        try:
            data = entry.read_bytes()
        except OSError:
            continue
        segments += 1
        size += max(0, len(data) - start)
        spans += sum(
            1
            for frame in parse_frames(data).frames
            if frame.kind == KIND_SPAN and frame.offset >= start
        )
    status: dict[str, object] | None = None
    try:
        loaded = json.loads((directory / STATUS_FILE).read_text())
        status = loaded if isinstance(loaded, dict) else None
    except (OSError, ValueError):
        pass

    def count(name: str) -> int:
        with contextlib.suppress(OSError):
            return sum(1 for path in (directory / name).iterdir() if path.is_file())
        return 0

    return Backlog(spans, size, segments, count(DEAD_LETTER_DIR), count(QUARANTINE_DIR), status)
