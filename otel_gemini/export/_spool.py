"""The durable spool: append-only segment files in one slot directory, bounded by bytes.

Layout of a slot directory::

    lock                      flock held by the owning process (content: its pid)
    seg-0000000000000001.spool  frames (see _records.py); a new segment every few MB
    head                      seq of the last span written (lets a restart count a cut tail)
    cursor                    where sending stands: segment, offset, last resolved seq
    status.json               the owner's last ExportStats (for `otel-gemini health`)
    dead-letter/              spans Langfuse rejected with 400, as OTLP request files
    quarantine/               segment files that held no readable frame at all

Writes go to the newest segment with one ``pwrite()`` per batch of spans at the offset the
writer tracks (no Python-side buffer, so neither a crash nor a fork can leave half a batch
behind in memory); the reader never reads past what the writer has finished. Before each
write the file is checked: bytes someone else appended or cut are damage (logged, the
segment sealed, writing goes on in a new one), a deleted file or slot directory is
recreated and its unsent spans counted as ``missing_segment``.

When a write fails (disk full, out of inodes or descriptors, permission denied) nothing is
dropped at once and no file is created to retry: the spans stay in memory, held here, and
are written again with backoff (0.1 s doubling to 1 s) ahead of newer ones. Memory stays
bounded by the hand-off's cap, beyond which the writer drops new spans as ``disk_full`` or
``spool_error``. The sender resolves spans in order
and moves the cursor; a segment is deleted once the cursor has passed it. At the byte cap
the oldest segment goes, its unsent spans counted as dropped (``spool_full``).

A restart scans every segment: intact spans are queued again, and the spans missing
between consecutive sequence numbers (or between the last one found and ``head``) are
counted as ``corrupt``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import stat
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from otel_gemini._private_dirs import private_directory
from otel_gemini.export._accounting import (
    DROP_CORRUPT,
    DROP_DISK_FULL,
    DROP_MISSING_SEGMENT,
    DROP_SPOOL_ERROR,
    DROP_SPOOL_FULL,
    Accounting,
)
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

_DIR_MODE = 0o700
_FILE_MODE = 0o600
# Never follow a symlink planted where a spool file should be (the last path component).
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC
_SPACE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""No space, quota exceeded, or out of inodes (which is ENOSPC too)."""
_RETRY_FIRST = 0.1
_RETRY_MAX = 1.0
"""Seconds between write attempts while failing: short, so writing resumes within a second
or so of the disk coming back (an attempt is one cheap syscall; no file is created)."""


def drop_reason(error: OSError) -> str:
    """The drop reason for spans a write failure finally loses."""
    return DROP_DISK_FULL if error.errno in _SPACE_ERRORS else DROP_SPOOL_ERROR


def describe_error(error: OSError) -> str:
    """A short cause for logs and health: ``disk full ([Errno 28] No space left ...)``."""
    if error.errno in _SPACE_ERRORS:
        return f"disk full ({error})"
    if error.errno in (errno.EMFILE, errno.ENFILE):
        return f"out of file descriptors ({error})"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not writable ({error})"
    return str(error)


def _write_private(path: Path, data: bytes) -> None:
    """Writes a whole file, 0600, never through a symlink."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _OPEN_FLAGS, _FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


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
    damage_logged: set[int] = field(default_factory=set)
    """Offsets of damage already logged (a batch read again must not log it again)."""
    changed_at: int | None = None
    """Where someone else appended or cut this file (that damage is logged already)."""


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
        on_recreated: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._accounting = accounting
        self.max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._fsync = fsync
        self._on_recreated = on_recreated
        # The slot was recreated and its lock not taken again yet: nothing is written there.
        self._unlocked = False
        self._clock = clock
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
        self._closed = False
        # Spans a failed write left in memory, oldest first, written again ahead of newer ones.
        self._held: list[tuple[SpanOrigin, bytes]] = []
        self._held_bytes = 0
        self._write_error: OSError | None = None
        self._write_failures = 0
        self._retry_at = 0.0
        self._orphans: list[Path] = []
        """Files that could not be deleted (a read-only directory): tried again later."""

    # --- opening and recovery ---

    def open(self) -> None:
        """Recovers what an earlier owner left and prepares a fresh segment for writing.

        An ``OSError`` (out of descriptors, the directory unreadable...) is raised with
        nothing counted yet; :meth:`append` then tries again, with backoff, holding spans.
        """
        with self._lock:
            try:
                self._open_locked()
            except OSError as error:
                self._failed_locked(error)
                raise

    def _open_locked(self) -> None:
        # The state files first: recovery only reads, so a failure here leaves nothing
        # half counted, and a later try starts over.
        if self._head_fd is None:
            self._head_fd = self._open_file(HEAD_FILE, os.O_RDWR | os.O_CREAT)
        if self._cursor_fd is None:
            self._cursor_fd = self._open_file(CURSOR_FILE, os.O_RDWR | os.O_CREAT)
        self._recover()
        # A full disk at start is not fatal: the first write creates the segment.
        with contextlib.suppress(OSError):
            self._start_segment_locked()
        self._persist_cursor_locked()
        self._opened = True

    def _open_file(self, name: str | Path, flags: int) -> int:
        return os.open(self.directory / name, flags | _OPEN_FLAGS, _FILE_MODE)

    def _recover(self) -> None:
        found: list[tuple[int, Path]] = []
        for entry in self.directory.iterdir():
            match = SEGMENT_PATTERN.match(entry.name)
            if match and entry.is_file() and not entry.is_symlink():
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
                    "Spool segment %s has %d damaged region(s), at offset(s) %s; intact "
                    "spans will be sent",
                    path,
                    parsed.damaged_regions,
                    ", ".join(str(offset) for offset in parsed.damage[:10]),
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
            target_dir.mkdir(mode=_DIR_MODE, exist_ok=True)
            os.replace(path, target_dir / f"{path.name}.{time.time_ns()}")
        except OSError:
            self._delete(path)

    def _delete(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:  # a read-only directory: the file waits for the next try
            if path not in self._orphans:
                self._orphans.append(path)
                _logger.debug("Could not delete spool file %s (%s)", path, error)

    def _retry_orphans_locked(self) -> None:
        orphans, self._orphans = self._orphans, []
        for path in orphans:
            self._delete(path)

    # --- the directory and its files disappearing ---

    def _ensure_directory_locked(self) -> None:
        """Recreates the slot directory (0700) and its state files if they were removed."""
        try:
            info: os.stat_result | None = os.lstat(self.directory)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISDIR(info.st_mode):
            raise OSError(errno.ENOTDIR, "not a directory (symlinks are not followed)")
        if info is None:
            # 0700 and checked like at start: nobody else may have put it back for us.
            private_directory(self.directory.parent)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.directory, _DIR_MODE)
            _logger.warning(
                "otel-gemini: spool directory %s disappeared; recreated it (unsent spans "
                "that were in it are counted as %s)",
                self.directory,
                DROP_MISSING_SEGMENT,
            )
            self._unlocked = self._on_recreated is not None
        if self._unlocked:
            assert self._on_recreated is not None
            if not self._on_recreated():
                # Another process took the slot between our mkdir and our lock: two owners
                # would send the same spans. Held (the append fails and is retried) until
                # the lock is ours again.
                raise OSError(
                    errno.EBUSY,
                    f"cannot lock the recreated spool directory {self.directory}; another "
                    "process holds it",
                )
            self._unlocked = False
        self._reopen_state_files_locked()

    def _reopen_state_files_locked(self) -> None:
        """Reopens ``head`` and ``cursor`` when they were deleted under us (and rewrites them)."""
        for name in (HEAD_FILE, CURSOR_FILE):
            fd = self._head_fd if name == HEAD_FILE else self._cursor_fd
            if fd is not None:
                try:
                    if os.fstat(fd).st_nlink > 0:
                        continue
                except OSError:
                    pass
                with contextlib.suppress(OSError):
                    os.close(fd)
            try:
                fd = self._open_file(name, os.O_RDWR | os.O_CREAT)
            except OSError:
                fd = None
            if name == HEAD_FILE:
                self._head_fd = fd
            else:
                self._cursor_fd = fd
        self._persist_cursor_locked()
        self._persist_head_locked()

    def _segment_missing_locked(self, segment: _Segment, error: OSError) -> None:
        """The cursor's segment file is gone: its unsent spans are lost, counted, skipped."""
        lost = segment.pending
        self._seal_active_locked(segment)  # if it is the one being written: no more of that
        self._segments.remove(segment)
        self._total_bytes -= segment.size
        segment.pending = 0
        self._cursor = Cursor(
            segment.seq, segment.size, max(self._cursor.last_seq, segment.last_seq)
        )
        if lost:
            self._accounting.dropped_from_disk(DROP_MISSING_SEGMENT, lost)
        _logger.warning(
            "otel-gemini: spool segment %s is gone (%s); %d unsent span(s) counted as %s",
            segment.path,
            error.strerror or error,
            lost,
            DROP_MISSING_SEGMENT,
        )
        with contextlib.suppress(OSError):
            self._ensure_directory_locked()
        self._collect_locked()
        self._persist_cursor_locked()

    def _foreign_change_locked(self, segment: _Segment, real_size: int) -> None:
        """Someone else appended to or cut ``segment``: its bytes from where they differ are
        damage (the reader skips and counts them); no more writes go to it."""
        _logger.warning(
            "otel-gemini: spool segment %s was changed by someone else at offset %d (%d "
            "bytes written, %d found); the difference is treated as damage and writing "
            "continues in a new segment",
            segment.path,
            min(segment.size, real_size),
            segment.size,
            real_size,
        )
        self._accounting.damage_found()
        segment.changed_at = min(segment.size, real_size)
        self._total_bytes += real_size - segment.size
        segment.size = real_size
        self._seal_active_locked(segment)

    # --- writing ---

    def _seal_active_locked(self, segment: _Segment | None = None) -> None:
        """Stops writing to the newest segment (``segment``, when given, if it is that one)."""
        if segment is not None and (not self._segments or self._segments[-1] is not segment):
            segment.sealed = True
            return
        if self._active_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._active_fd)
            self._active_fd = None
        if segment is not None:
            segment.sealed = True
        elif self._segments:
            self._segments[-1].sealed = True

    def _start_segment_locked(self) -> None:
        self._seal_active_locked()
        if self._unlocked:
            self._ensure_directory_locked()  # the lock again, or EBUSY: no segment there
        # Segments already sent go first: their space and inode are the new one's.
        self._collect_locked()
        seq = self._last_segment_seq + 1
        path = self.directory / segment_name(seq)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            fd = self._open_file(path.name, flags)
        except FileNotFoundError:
            self._ensure_directory_locked()
            fd = self._open_file(path.name, flags)
        self._last_segment_seq = seq
        self._active_fd = fd
        base = self._next_seq - 1
        self._segments.append(_Segment(seq, path, 0, base_seq=base, last_seq=base))
        self._collect_locked()
        if self._orphans:
            self._retry_orphans_locked()

    def _writable_segment_locked(self) -> _Segment:
        """The segment to append to, after checking its file is still as we left it."""
        segment = self._segments[-1] if self._segments else None
        if segment is not None and not segment.sealed and self._active_fd is not None:
            try:
                info = os.fstat(self._active_fd)
            except OSError as error:
                if error.errno != errno.EBADF:
                    raise
                self._seal_active_locked(segment)  # the descriptor is gone: a new segment
                info = None
            if info is None:
                pass
            elif info.st_nlink == 0:
                _logger.warning(
                    "otel-gemini: spool segment %s was deleted while being written",
                    segment.path,
                )
                self._seal_active_locked(segment)
            elif info.st_size != segment.size:
                self._foreign_change_locked(segment, info.st_size)
            elif segment.size < self._segment_bytes:
                return segment
        self._start_segment_locked()
        return self._segments[-1]

    def append(
        self,
        spans: Sequence[tuple[SpanOrigin, bytes]],
        *,
        memory_spans: int,
        memory_bytes: int,
        dropped: dict[str, int],
        retry_now: bool = False,
    ) -> OSError | None:
        """Writes framed spans (with the origins they need) and makes them readable.

        Spans an earlier failed write left held in memory go first. The accounting moves
        ``memory_spans`` out of memory in the same step: what was written to disk, and
        ``dropped`` as given. When a write fails, the spans not written stay held in
        memory (still counted there) and the error is returned; they are written again by
        a later call once the backoff has passed (``retry_now``: at once, for a last try).
        A spool that failed to open is opened here first. After :meth:`close` spans are
        dropped as ``spool_error``.
        """
        with self._lock:
            held, held_bytes = self._held, self._held_bytes
            todo = [*held, *spans] if held else spans
            written = 0
            failure: OSError | None = None
            if self._closed:
                failure = OSError("the spool is closed")
            elif self._write_error is not None and not retry_now and self._clock() < self._retry_at:
                failure = self._write_error  # backing off: the new ones wait behind
            elif not self._opened:
                try:
                    self._open_locked()
                except OSError as error:
                    failure = error
            if failure is None:
                try:
                    while written < len(todo):
                        written = self._append_some_locked(todo, written)
                except OSError as error:
                    failure = error
            lost = dict(dropped)
            rest = todo[written:]
            self._held, self._held_bytes = [], 0
            if failure is None:
                self._write_error, self._write_failures = None, 0
            elif not self._closed:
                self._held = list(rest)
                self._held_bytes = sum(len(framed) for _, framed in rest)
                self._failed_locked(failure)
            elif rest:
                lost[DROP_SPOOL_ERROR] = lost.get(DROP_SPOOL_ERROR, 0) + len(rest)
            self._accounting.left_memory(
                memory_spans + len(held),
                memory_bytes + held_bytes,
                persisted=written,
                dropped=lost,
                kept_spans=len(self._held),
                kept_bytes=self._held_bytes,
            )
            if written:
                self._persist_head_locked()
            self._enforce_cap_locked()
            self._accounting.disk_bytes(self._unsent_bytes_locked())
            return failure

    def _failed_locked(self, failure: OSError) -> None:
        if failure is not self._write_error:  # a new attempt failed: wait longer
            self._write_failures += 1
            delay = min(_RETRY_MAX, _RETRY_FIRST * 2 ** min(self._write_failures - 1, 8))
            self._retry_at = self._clock() + delay
        self._write_error = failure

    def _append_some_locked(self, spans: Sequence[tuple[SpanOrigin, bytes]], index: int) -> int:
        segment = self._writable_segment_locked()
        fd = self._active_fd
        assert fd is not None  # _writable_segment_locked raised otherwise
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
        try:
            self._write_all(fd, bytes(buffer), segment.size)
            if self._fsync:
                os.fsync(fd)
        except OSError as error:
            for _, origin in new_origins:
                segment.origin_ids.pop(origin, None)
            # Cut what part of the write landed: the next try writes at the same offset,
            # in the same file (a new file per failed write would exhaust inodes).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, segment.size)
            if error.errno in _SPACE_ERRORS:
                if self._release_sent_active_locked(segment):
                    return index - (seq - first_seq)  # again at once, in a fresh segment
            elif error.errno == errno.EBADF:
                self._seal_active_locked(segment)  # the descriptor is gone: a new segment
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

    def _release_sent_active_locked(self, segment: _Segment) -> bool:
        """On a full disk, a segment whose spans are all sent is holding space (and an inode)
        nobody needs: seal it so it is deleted, and the next try starts a fresh one.

        True when it was released (never for an empty segment: a fresh one failing too
        is a full disk indeed, not a reason to create another)."""
        cursor = self._cursor
        if (
            segment.size == 0
            or segment.pending
            or cursor.segment != segment.seq
            or cursor.offset < segment.size
        ):
            return False
        self._seal_active_locked(segment)
        self._collect_locked()
        return True

    @staticmethod
    def _write_all(fd: int, data: bytes, offset: int) -> None:
        # pwrite at our own offset, not O_APPEND: bytes someone else appended can then never
        # push our records to where the reader does not look.
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written

    def _persist_head_locked(self) -> None:
        if self._head_fd is not None:
            with contextlib.suppress(OSError):
                os.pwrite(self._head_fd, _packed(_HEAD, _HEAD_MAGIC, self._next_seq - 1), 0)

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
        """The next run of unsent spans from the cursor (None when there is nothing).

        A segment file found missing is skipped (its spans counted ``missing_segment``);
        any other ``OSError`` (out of file descriptors...) is raised: try again later.
        """
        with self._lock:
            while True:
                segment = self._cursor_segment_locked()
                if segment is None:
                    if self._segments and self._segments[0].seq > self._cursor.segment:
                        self._collect_locked()  # enters the next segment
                        continue
                    return None
                if self._cursor.offset < segment.size:
                    batch = self._read_locked(segment, max_spans, max_bytes)
                    if batch is not None:
                        return batch
                    continue
                if not segment.sealed:
                    return None
                self._collect_locked()

    def _cursor_segment_locked(self) -> _Segment | None:
        for segment in self._segments:
            if segment.seq == self._cursor.segment:
                return segment
        return None

    def _read_window_locked(self, segment: _Segment, start: int, max_bytes: int) -> bytes | None:
        """Bytes from ``start`` (a record larger than the window whole); None: file gone."""
        try:
            fd = os.open(segment.path, os.O_RDONLY | _OPEN_FLAGS)
        except (FileNotFoundError, NotADirectoryError) as error:
            self._segment_missing_locked(segment, error)
            return None
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            self._segment_missing_locked(segment, error)  # replaced by a symlink: not ours
            return None
        try:
            window = min(max_bytes, segment.size - start)
            data = os.pread(fd, window, start)
            if len(data) >= HEADER_SIZE and data[:4] == MAGIC:
                # A record larger than the window (one huge span) is read whole.
                (length,) = struct.unpack_from("<I", data, 8)
                whole = HEADER_SIZE + length
                if window < whole <= segment.size - start:
                    window = whole
                    data += os.pread(fd, whole - len(data), start + len(data))
            if len(data) < window:  # the file is shorter than what we wrote: cut by someone
                self._foreign_change_locked(segment, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        return data

    def _read_locked(self, segment: _Segment, max_spans: int, max_bytes: int) -> Batch | None:
        start = self._cursor.offset
        data = self._read_window_locked(segment, start, max_bytes)
        if data is None:
            return None
        at_eof = start + len(data) >= segment.size
        parsed = parse_frames(data, start, at_eof=at_eof, max_spans=max_spans)
        spans: list[SpoolSpan] = []
        corrupt = 0
        expected = self._cursor.last_seq + 1
        last_seq = self._cursor.last_seq
        end = start
        complete = True
        origins, live, unpack_id = segment.origins, segment.live, _ORIGIN_ID.unpack_from
        newest = segment.last_seq if live else None
        for kind, seq, payload, _, frame_end in parsed.frames:
            if kind == KIND_SPAN:
                if seq < expected or (newest is not None and seq > newest):
                    end = frame_end
                    continue  # already resolved, or a copy someone else wrote: not ours
                if len(spans) + corrupt >= max_spans:
                    complete = False
                    break
                if live and seq > expected:
                    corrupt += seq - expected  # frames lost between two good ones
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
            end = min(segment.size, start + max(len(data), 1))
        if complete and newest is not None and end >= segment.size and newest >= expected:
            # Everything this process wrote here is read, yet spans are missing at the end:
            # cut off or damaged beyond the last good frame.
            corrupt += newest - expected + 1
            last_seq = newest
        damage = parsed.damage
        if segment.changed_at is not None and at_eof:
            # Damage running from the last good frame to where the file was appended to or
            # cut is that change, logged when it was found.
            last_good = parsed.frames[-1].offset if parsed.frames else start
            damage = [offset for offset in damage if offset < last_good]
        self._log_damage_locked(segment, damage)
        return Batch(segment.seq, start, end, last_seq, spans, corrupt)

    def _log_damage_locked(self, segment: _Segment, offsets: list[int]) -> None:
        for offset in offsets:
            if offset in segment.damage_logged:
                continue
            segment.damage_logged.add(offset)
            self._accounting.damage_found()
            _logger.warning(
                "otel-gemini: spool segment %s is damaged at offset %d; the intact spans "
                "around it are sent, lost ones counted as %s",
                segment.path,
                offset,
                DROP_CORRUPT,
            )

    def ack(self, batch: Batch, *, sent: int, dead_lettered: int) -> bool:
        """Marks ``batch`` resolved and moves the cursor past it.

        False when the batch no longer exists (its segment was dropped to make room, or went
        missing, while it was in flight; its spans were then counted as dropped).
        """
        with self._lock:
            if (self._cursor.segment, self._cursor.offset) != (batch.segment, batch.start):
                return False
            segment = self._cursor_segment_locked()
            if segment is None:
                return False
            resolved = sent + dead_lettered + batch.corrupt
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
            if segment.pending:
                # Spans the reader never found: cut off by someone before it got there.
                _logger.warning(
                    "otel-gemini: %d span(s) of spool segment %s were never found (damaged "
                    "or cut); counted as %s",
                    segment.pending,
                    segment.path,
                    DROP_CORRUPT,
                )
                self._accounting.dropped_from_disk(DROP_CORRUPT, segment.pending)
                segment.pending = 0
            if segment.live and segment.last_seq > self._cursor.last_seq:
                cursor = self._cursor
                self._cursor = Cursor(cursor.segment, cursor.offset, segment.last_seq)
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
            directory.mkdir(mode=_DIR_MODE, exist_ok=True)
            path = directory / f"dl-{time.time_ns()}-http{status}-{len(spans)}.otlp"
            _write_private(path, body)
            files = sorted(directory.glob("dl-*.otlp"))
            total = sum(file.stat().st_size for file in files)
            for file in files[:-1]:
                if total <= self._dead_letter_max_bytes:
                    break
                total -= file.stat().st_size
                with contextlib.suppress(FileNotFoundError):
                    file.unlink()
        except OSError as error:
            _logger.warning("Could not keep dead-lettered spans in %s: %s", directory, error)

    def write_status(self, status: dict[str, object]) -> None:
        """Replaces ``status.json`` atomically (best effort)."""
        path = self.directory / STATUS_FILE
        temporary = path.with_suffix(".tmp")
        try:
            _write_private(temporary, json.dumps(status, sort_keys=True).encode())
            os.replace(temporary, path)
        except OSError:
            pass

    # --- state ---

    @property
    def pending_spans(self) -> int:
        with self._lock:
            return sum(segment.pending for segment in self._segments)

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._opened

    @property
    def held_spans(self) -> int:
        """Spans a failed write left in memory, waiting for the next attempt."""
        with self._lock:
            return len(self._held)

    @property
    def write_error(self) -> OSError | None:
        """Why writing fails now (None when the last write worked)."""
        with self._lock:
            return self._write_error

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
        """Closes files; a segment whose spans were all sent is deleted. Spans still held in
        memory after a failed write are lost now, and counted."""
        with self._lock:
            if self._held:
                error = self._write_error or OSError("the spool is closing")
                reason = drop_reason(error)
                _logger.error(
                    "otel-gemini: %d span(s) could not be written to spool %s before shutdown "
                    "(%s); counted as %s",
                    len(self._held),
                    self.directory,
                    describe_error(error),
                    reason,
                )
                self._accounting.left_memory(
                    len(self._held),
                    self._held_bytes,
                    persisted=0,
                    dropped={reason: len(self._held)},
                )
                self._held, self._held_bytes = [], 0
            if self._opened and len(self._segments) == 1:
                last = self._segments[0]
                if not last.pending and self._cursor.segment == last.seq:
                    self._cursor = Cursor(last.seq + 1, 0, self._cursor.last_seq)
                    self._persist_cursor_locked()
                    self._delete(last.path)
            self._opened = False
            self._closed = True
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
        self._closed = True


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
