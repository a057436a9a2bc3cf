"""The spool on its own: order, acknowledgement, the byte cap, restarts and damage."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_gemini.export import LangfuseExporter
from otel_gemini.export._accounting import DROP_CORRUPT, DROP_SPOOL_FULL, Accounting
from otel_gemini.export._otlp_wire import SpanOrigin, framed_span
from otel_gemini.export._records import MAGIC
from otel_gemini.export._slots import SpoolBusyError, acquire_slot, slot_owner
from otel_gemini.export._spool import Batch, Spool
from otel_gemini.testing import FakeLangfuse

ORIGIN = SpanOrigin(b"\x0a\x05hello", b"", b"\x0a\x04test", b"")
OTHER_ORIGIN = SpanOrigin(b"", b"", b"\x0a\x05other", b"")


def span_bytes(number: int) -> bytes:
    """A stand-in for an encoded span: its number, padded (the spool never decodes spans)."""
    return framed_span(number.to_bytes(8, "big") + b"x" * 112)


def number_of(framed: bytes) -> int:
    return int.from_bytes(framed[2:10], "big")  # after the tag and a one-byte length


def open_spool(
    directory: Path, *, max_bytes: int = 10 * 1024 * 1024, segment_bytes: int = 64 * 1024
) -> tuple[Spool, Accounting]:
    accounting = Accounting(1 << 20, max_bytes)
    spool = Spool(
        directory,
        accounting,
        max_bytes=max_bytes,
        segment_bytes=segment_bytes,
        dead_letter_max_bytes=1 << 20,
    )
    spool.open()
    return spool, accounting


def write(
    spool: Spool, accounting: Accounting, numbers: range, origin: SpanOrigin = ORIGIN
) -> None:
    """Hands spans over as the writer does: accepted into memory, then appended."""
    with accounting.lock:
        for _ in numbers:
            accounting.accept_locked(1)
    failure = spool.append(
        [(origin, span_bytes(number)) for number in numbers],
        memory_spans=len(numbers),
        memory_bytes=len(numbers),
        dropped={},
    )
    assert failure is None


def ack_first(spool: Spool, count: int) -> None:
    """Reads and acks ``count`` spans (batches never span two segments)."""
    while count:
        batch = spool.read_batch(count, 1 << 20)
        assert batch is not None and spool.ack(batch, sent=len(batch.spans), dead_lettered=0)
        count -= len(batch.spans)


def drain(spool: Spool, max_spans: int = 100) -> list[int]:
    """Reads and acks everything, as a sender that always succeeds; the span numbers."""
    numbers: list[int] = []
    while (batch := spool.read_batch(max_spans, 1 << 20)) is not None:
        numbers.extend(number_of(span.framed) for span in batch.spans)
        assert spool.ack(batch, sent=len(batch.spans), dead_lettered=0)
    return numbers


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("seg-*.spool"))


def test_spans_come_back_in_order_in_batches_and_acked_segments_are_deleted(
    tmp_path: Path,
) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(1000))
    assert len(segment_files(tmp_path)) > 5
    first = spool.read_batch(30, 1 << 20)
    assert first is not None and len(first.spans) == 30
    assert spool.ack(first, sent=30, dead_lettered=0)
    assert drain(spool, 300) == list(range(30, 1000))
    stats = accounting.snapshot()
    assert (stats.accepted, stats.sent, stats.queued, stats.balanced) == (1000, 1000, 0, True)
    assert len(segment_files(tmp_path)) == 1  # only the segment being written remains
    assert spool.resolved_through == spool.last_written_seq == 1000


def test_spans_of_several_origins_keep_their_origin(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(3))
    write(spool, accounting, range(3, 5), OTHER_ORIGIN)
    batch = spool.read_batch(10, 1 << 20)
    assert batch is not None
    assert [span.origin for span in batch.spans] == [ORIGIN] * 3 + [OTHER_ORIGIN] * 2


def test_a_restart_replays_what_was_not_acked_and_continues_the_sequence(
    tmp_path: Path,
) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(500))
    ack_first(spool, 120)
    # No close(): the process "dies" here.
    restarted, accounting2 = open_spool(tmp_path, segment_bytes=16 * 1024)
    stats = accounting2.snapshot()
    assert (stats.recovered, stats.queued_disk_spans, stats.dropped_total) == (380, 380, 0)
    write(restarted, accounting2, range(500, 510))
    assert drain(restarted) == list(range(120, 510))
    assert restarted.last_written_seq == 510
    assert accounting2.snapshot().balanced


def test_an_unacked_batch_is_read_again(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(10))
    first = spool.read_batch(4, 1 << 20)
    again = spool.read_batch(4, 1 << 20)
    assert first is not None and again is not None
    assert [span.seq for span in first.spans] == [span.seq for span in again.spans] == [1, 2, 3, 4]


def test_at_the_byte_cap_the_oldest_segments_are_dropped_and_counted(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path, max_bytes=100 * 1024, segment_bytes=16 * 1024)
    for start in range(0, 3000, 100):
        write(spool, accounting, range(start, start + 100))
    stats = accounting.snapshot()
    dropped = stats.dropped[DROP_SPOOL_FULL]
    assert sum(path.stat().st_size for path in segment_files(tmp_path)) <= 100 * 1024
    assert stats.balanced and stats.queued_disk_spans == 3000 - dropped
    received = drain(spool)
    assert received == list(range(dropped, 3000))  # oldest went first, the rest in order
    assert accounting.snapshot().balanced


def test_a_batch_in_flight_when_its_segment_is_dropped_is_not_counted_twice(
    tmp_path: Path,
) -> None:
    spool, accounting = open_spool(tmp_path, max_bytes=64 * 1024, segment_bytes=16 * 1024)
    write(spool, accounting, range(50))
    in_flight = spool.read_batch(50, 1 << 20)
    assert in_flight is not None
    for start in range(50, 1000, 50):
        write(spool, accounting, range(start, start + 50))
    assert not spool.ack(in_flight, sent=50, dead_lettered=0)
    stats = accounting.snapshot()
    assert stats.sent == 0 and stats.balanced


def _frame_offsets(data: bytes) -> list[int]:
    offsets, position = [], data.find(MAGIC)
    while position >= 0:
        offsets.append(position)
        position = data.find(MAGIC, position + 1)
    return offsets


def _restart_counts(directory: Path) -> tuple[Spool, int, int]:
    spool, accounting = open_spool(directory, segment_bytes=16 * 1024)
    stats = accounting.snapshot()
    return spool, stats.queued_disk_spans, stats.dropped.get(DROP_CORRUPT, 0)


def test_flipped_bytes_lose_exactly_the_damaged_spans(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(1000))
    target = segment_files(tmp_path)[2]
    data = bytearray(target.read_bytes())
    offsets = _frame_offsets(bytes(data))
    for index in (3, 10, 11):  # payload bytes of three span frames (frame 0 is the origin)
        data[offsets[index] + 40] ^= 0xFF
    data[offsets[20] + 1] ^= 0xFF  # and one frame's magic
    target.write_bytes(bytes(data))
    restarted, intact, corrupt = _restart_counts(tmp_path)
    assert (intact, corrupt) == (996, 4)
    received = drain(restarted)
    assert len(received) == len(set(received)) == 996


def test_a_truncated_segment_loses_exactly_the_cut_spans(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(1000))
    last = segment_files(tmp_path)[-1]
    with last.open("r+b") as file:
        file.truncate(last.stat().st_size // 3)
    middle = segment_files(tmp_path)[3]
    with middle.open("r+b") as file:
        file.truncate(middle.stat().st_size - 50)  # a torn final frame
    restarted, intact, corrupt = _restart_counts(tmp_path)
    assert intact + corrupt == 1000 and corrupt > 1
    assert len(drain(restarted)) == intact


def test_a_garbage_segment_is_quarantined_and_other_files_are_left_alone(
    tmp_path: Path,
) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(300))
    segments = segment_files(tmp_path)
    segments[1].write_bytes(os.urandom(segments[1].stat().st_size))
    (tmp_path / "notes.txt").write_text("not ours")
    (tmp_path / "seg-9999999999999999.spool").write_bytes(os.urandom(5000))
    restarted, intact, corrupt = _restart_counts(tmp_path)
    lost_in_segment = 300 - intact
    assert corrupt == lost_in_segment > 0
    assert (tmp_path / "notes.txt").read_text() == "not ours"
    quarantined = sorted(path.name for path in (tmp_path / "quarantine").iterdir())
    assert [name.split(".spool")[0] for name in quarantined] == [
        segments[1].name.removesuffix(".spool"),
        "seg-9999999999999999",
    ]
    assert len(drain(restarted)) == intact


def test_a_lost_cursor_replays_rather_than_loses(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(200))
    ack_first(spool, 50)
    (tmp_path / "cursor").write_bytes(b"torn")
    restarted, intact, corrupt = _restart_counts(tmp_path)
    assert (intact, corrupt) == (200, 0)  # at-least-once: the acked 50 come again
    assert drain(restarted) == list(range(200))


def no_space(*args: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_holds_its_spans_in_memory_and_writes_them_first_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(10))
    with accounting.lock:
        for _ in range(5):
            accounting.accept_locked(1)
    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", no_space)
        failure = spool.append(
            [(ORIGIN, span_bytes(n)) for n in range(10, 15)],
            memory_spans=5,
            memory_bytes=5,
            dropped={},
        )
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
    stats = accounting.snapshot()
    assert (spool.held_spans, stats.queued_memory_spans, stats.dropped_total) == (5, 5, 0)
    with accounting.lock:
        for _ in range(5):
            accounting.accept_locked(1)
    failure = spool.append(
        [(ORIGIN, span_bytes(n)) for n in range(15, 20)],
        memory_spans=5,
        memory_bytes=5,
        dropped={},
        retry_now=True,  # not waiting for the backoff
    )
    assert failure is None and spool.held_spans == 0
    assert drain(spool) == list(range(20))
    stats = accounting.snapshot()
    assert (stats.dropped_total, stats.queued, stats.sent, stats.balanced) == (0, 0, 20, True)


def test_spans_still_held_at_close_are_counted_as_disk_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, accounting = open_spool(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", no_space)
        with accounting.lock:
            for _ in range(3):
                accounting.accept_locked(1)
        assert spool.append(
            [(ORIGIN, span_bytes(n)) for n in range(3)], memory_spans=3, memory_bytes=3, dropped={}
        )
    spool.close()
    stats = accounting.snapshot()
    assert (dict(stats.dropped), stats.queued, stats.balanced) == ({"disk_full": 3}, 0, True)


def test_a_closed_descriptor_is_replaced_by_a_new_segment(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(10))
    os.close(spool._active_fd)  # type: ignore[arg-type]
    write(spool, accounting, range(10, 20))
    assert drain(spool) == list(range(20))
    assert accounting.snapshot().balanced


def test_dead_letters_are_kept_as_otlp_requests(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(3))
    batch = spool.read_batch(10, 1 << 20)
    assert isinstance(batch, Batch)
    spool.dead_letter(batch.spans[1:2], 400)
    (kept,) = (tmp_path / "dead-letter").iterdir()
    assert kept.name.endswith("-http400-1.otlp")
    assert span_bytes(1)[2:] in kept.read_bytes()


def test_each_process_gets_its_own_slot_and_a_full_root_is_a_clear_error(
    tmp_path: Path,
) -> None:
    first = acquire_slot(tmp_path, 2)
    second = acquire_slot(tmp_path, 2)
    assert (first.directory.name, second.directory.name) == ("slot-0", "slot-1")
    assert slot_owner(first.directory) == os.getpid()
    with pytest.raises(SpoolBusyError, match=str(tmp_path)):
        acquire_slot(tmp_path, 2)
    first.release()
    assert slot_owner(first.directory) is None
    assert acquire_slot(tmp_path, 2).directory.name == "slot-0"


def test_bytes_appended_by_someone_else_are_skipped_live_and_after_a_restart(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "slot"
    directory.mkdir()
    spool, accounting = open_spool(directory)
    write(spool, accounting, range(100))
    (active,) = segment_files(directory)
    with active.open("ab") as file:
        file.write(os.urandom(4096))
    write(spool, accounting, range(100, 200))  # noticed: this goes to a new segment
    assert len(segment_files(directory)) == 2
    shutil.copytree(directory, tmp_path / "crashed")  # as a crash would leave it
    restarted, intact, corrupt = _restart_counts(tmp_path / "crashed")
    assert (intact, corrupt) == (200, 0)
    assert drain(restarted) == list(range(200))
    assert drain(spool) == list(range(200))
    stats = accounting.snapshot()
    assert (stats.dropped_total, stats.balanced) == (0, True)
    assert stats.last_corrupt_at is not None


def test_a_cut_active_segment_counts_the_cut_spans_without_another_write(
    tmp_path: Path,
) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(100))
    (active,) = segment_files(tmp_path)
    os.truncate(active, active.stat().st_size // 2)
    received = drain(spool)
    stats = accounting.snapshot()
    assert received == list(range(len(received))) and 40 < len(received) < 60
    assert stats.dropped[DROP_CORRUPT] == 100 - len(received)
    assert (stats.queued, stats.balanced) == (0, True)
    assert spool.resolved_through == spool.last_written_seq == 100  # a flush can finish
    write(spool, accounting, range(100, 110))
    assert drain(spool) == list(range(100, 110))


def test_a_damaged_last_record_is_counted_when_the_reader_reaches_it(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(10))
    (active,) = segment_files(tmp_path)
    data = bytearray(active.read_bytes())
    data[_frame_offsets(bytes(data))[-1] + 40] ^= 0xFF
    active.write_bytes(bytes(data))
    assert drain(spool) == list(range(9))
    stats = accounting.snapshot()
    assert (stats.dropped[DROP_CORRUPT], stats.queued, stats.balanced) == (1, 0, True)
    assert spool.resolved_through == 10


def test_a_deleted_segment_is_counted_missing_and_the_rest_is_read(tmp_path: Path) -> None:
    spool, accounting = open_spool(tmp_path, segment_bytes=16 * 1024)
    write(spool, accounting, range(500))
    first = segment_files(tmp_path)[0]
    first.unlink()
    received = drain(spool)
    stats = accounting.snapshot()
    missing = stats.dropped["missing_segment"]
    assert received == list(range(missing, 500)) and missing > 0
    assert (stats.queued, stats.balanced) == (0, True)


def test_a_removed_slot_directory_is_recreated_private_and_writing_goes_on(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "slot-0"
    directory.mkdir()
    spool, accounting = open_spool(directory)
    write(spool, accounting, range(50))
    shutil.rmtree(directory)
    write(spool, accounting, range(50, 80))  # the deleted segment is noticed before writing
    assert directory.is_dir() and stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert drain(spool) == list(range(50, 80))
    stats = accounting.snapshot()
    assert (stats.dropped["missing_segment"], stats.queued, stats.balanced) == (50, 0, True)
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in directory.iterdir())


def test_a_recreated_slot_another_process_locked_first_gets_nothing_until_ours_again(
    tmp_path: Path,
) -> None:
    slot = acquire_slot(tmp_path, 1)
    holder: list[subprocess.Popen[str]] = []

    def taken_in_between() -> bool:
        # Between our mkdir and our lock, a second process takes the recreated slot.
        if not holder:
            holder.append(hold_lock(slot.directory / "lock"))
        return slot.relock()

    accounting = Accounting(1 << 20, 10 * 1024 * 1024)
    spool = Spool(
        slot.directory,
        accounting,
        max_bytes=10 * 1024 * 1024,
        segment_bytes=64 * 1024,
        dead_letter_max_bytes=1 << 20,
        on_recreated=taken_in_between,
    )
    spool.open()
    try:
        write(spool, accounting, range(5))
        shutil.rmtree(slot.directory)
        for number in (5, 6):  # held and retried, never written into the other's slot
            with accounting.lock:
                accounting.accept_locked(1)
            failure = spool.append(
                [(ORIGIN, span_bytes(number))], memory_spans=1, memory_bytes=1, dropped={}
            )
            assert failure is not None and failure.errno == errno.EBUSY
            assert segment_files(slot.directory) == []
        assert slot_owner(slot.directory) == holder[0].pid
    finally:
        for process in holder:
            process.kill()
            process.wait()
    # The other process is gone: the lock is ours again and writing goes on.
    assert spool.append([], memory_spans=0, memory_bytes=0, dropped={}, retry_now=True) is None
    assert slot_owner(slot.directory) == os.getpid()
    assert drain(spool) == [5, 6]
    slot.release()


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """A second process holding ``path``'s lock until killed (started once it holds it)."""
    code = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0)\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_full_disk_creates_no_file_and_frees_a_fully_sent_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool, accounting = open_spool(tmp_path)
    write(spool, accounting, range(10))
    assert drain(spool) == list(range(10))
    (sent,) = segment_files(tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(os, "pwrite", no_space)
        for attempt in range(20):
            with accounting.lock:
                accounting.accept_locked(1)
            failure = spool.append(
                [(ORIGIN, span_bytes(10 + attempt))],
                memory_spans=1,
                memory_bytes=1,
                dropped={},
                retry_now=True,
            )
            assert failure is not None and len(segment_files(tmp_path)) <= 1
    assert not sent.exists()  # all sent: deleted to give its space back
    assert spool.append([], memory_spans=0, memory_bytes=0, dropped={}, retry_now=True) is None
    assert drain(spool) == list(range(10, 30))
    assert accounting.snapshot().balanced


def test_an_unsent_spool_written_by_the_previous_version_is_delivered_whole(
    tmp_path: Path, fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    # Written by main before the spool wrote at its own offsets (pwrite, not O_APPEND):
    # 50 spans named span-0 ... span-49, none sent. The format did not change.
    written = Path(__file__).parent / "data" / "spool_written_by_main" / "slot-0"
    shutil.copytree(written, tmp_path / "spool" / "slot-0")
    exporter = make_exporter()
    assert exporter.force_flush(timeout_millis=10_000)
    assert sorted(span.name for span in fake_langfuse.spans) == sorted(
        f"span-{number}" for number in range(50)
    )
    stats = exporter.stats()
    assert (stats.recovered, stats.sent, stats.dropped_total, stats.balanced) == (50, 50, 0, True)


def test_a_spool_that_could_not_open_holds_spans_and_opens_on_a_later_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier, earlier_accounting = open_spool(tmp_path)
    write(earlier, earlier_accounting, range(5))  # an earlier run left 5 unsent spans
    accounting = Accounting(1 << 20, 1 << 20)
    spool = Spool(
        tmp_path,
        accounting,
        max_bytes=1 << 20,
        segment_bytes=1 << 16,
        dead_letter_max_bytes=1 << 20,
    )

    def no_descriptors(*args: object) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", no_descriptors)
        with pytest.raises(OSError):
            spool.open()
        with accounting.lock:
            for _ in range(3):
                accounting.accept_locked(1)
        failure = spool.append(
            [(ORIGIN, span_bytes(n)) for n in range(5, 8)],
            memory_spans=3,
            memory_bytes=3,
            dropped={},
            retry_now=True,
        )
        assert failure is not None and failure.errno == errno.EMFILE
    assert (spool.is_open, spool.held_spans, accounting.snapshot().dropped_total) == (False, 3, 0)
    assert spool.append([], memory_spans=0, memory_bytes=0, dropped={}, retry_now=True) is None
    assert spool.is_open and drain(spool) == list(range(8))
    stats = accounting.snapshot()
    assert (stats.recovered, stats.sent, stats.queued, stats.balanced) == (5, 8, 0, True)
