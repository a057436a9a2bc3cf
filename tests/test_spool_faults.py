"""Acceptance: the spool survives disk and file faults (issue 16).

The real exporter, real files and the fake Langfuse over loopback. Filesystem faults (a
full disk, no inodes) happen on a small tmpfs each test mounts, so those tests need root
(CI runs as root) and skip otherwise. Every scenario ends with the same checks
(:func:`settle`): the writer and sender threads are alive, nothing is left queued, every
span produced was delivered or counted dropped by reason (exactly), a loss shows in health
with its reason, delivery of new spans resumed within 5 s of the fault ending, and there
were never more than 50 segment files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

import pytest
from opentelemetry.sdk.trace import TracerProvider
from polling import wait_until

from otel_gemini import _attributes as attrs
from otel_gemini.export import ExportStats, LangfuseExporter, RetryPolicy
from otel_gemini.export._slots import slot_owner
from otel_gemini.health import HealthReporter, HealthStatus
from otel_gemini.testing import FakeLangfuse

FAST_RETRY = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, pause_interval=1.0)
KIB = 1024
MIB = 1024 * KIB
MAX_SEGMENT_FILES = 50
RESUME_SECONDS = 5.0
NOBODY = 65534
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def exporter_retry() -> RetryPolicy:
    return FAST_RETRY


@pytest.fixture
def fault_fs() -> Iterator[Callable[..., Path]]:
    """Mounts small tmpfs file systems (``size``, ``inodes``) for a test; unmounts after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    mounts: list[Path] = []

    def mount(size: str = "2m", inodes: int | None = None) -> Path:
        # Not under tmp_path: its parents are 0700, and one test runs a producer as nobody.
        path = Path(tempfile.mkdtemp(prefix="otel-gemini-fault-"))
        path.chmod(0o755)
        options = f"size={size},mode=0755" + (f",nr_inodes={inodes}" if inodes else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            path.rmdir()
            pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in reversed(mounts):
        if subprocess.run(["umount", str(path)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


class Producer:
    """Ends GenAI-like spans at a steady rate on a thread; remembers ids and end times."""

    def __init__(self, exporter: LangfuseExporter, rate: float = 2000.0) -> None:
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(exporter.span_processor())
        self._tracer = provider.get_tracer("fault-test")
        self._rate = rate
        self.ended: list[tuple[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-test-producer")

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            for _ in range(20):
                with self._tracer.start_as_current_span(
                    "generate_content gemini-2.5-flash",
                    attributes={
                        attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                        attrs.GEN_AI_USAGE_INPUT_TOKENS: 120,
                        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
                        attrs.USER_ID: "user-7",
                    },
                ) as span:
                    span_id = f"{span.get_span_context().span_id:016x}"
                self.ended.append((span_id, time.monotonic()))
            ahead = len(self.ended) / self._rate - (time.monotonic() - start)
            if ahead > 0:
                self._stop.wait(ahead)  # pacing the producer, not synchronising the test

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ids(self) -> set[str]:
        return {span_id for span_id, _ in self.ended}

    def ended_after(self, moment: float) -> set[str]:
        return {span_id for span_id, at in list(self.ended) if at > moment}


def segment_files(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(directory / name for name in names if name.startswith("seg-"))


class SegmentWatch:
    """Counts segment files every few milliseconds on a thread; ``most`` is the maximum seen."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-test-segment-watch")

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.most = max(self.most, len(segment_files(self._directory)))

    def __enter__(self) -> SegmentWatch:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)


def keep_fault(seconds: float, *checks: Callable[[], object]) -> None:
    """Lets a fault last ``seconds`` (its duration is the scenario), running ``checks``."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for check in checks:
            check()
        threading.Event().wait(min(left, 0.05))


def reasons_now(exporter: LangfuseExporter) -> tuple[HealthStatus, str]:
    report = HealthReporter(exporter, probe=False).report()
    return report.status, " | ".join(report.reasons)


def settle(
    exporter: LangfuseExporter,
    fake: FakeLangfuse,
    producer: Producer,
    watch: SegmentWatch,
    fault_ended_at: float,
) -> ExportStats:
    """The checks every scenario ends with; returns the final stats."""
    wait_until(
        lambda: bool(producer.ended_after(fault_ended_at) & {s.span_id for s in fake.spans}),
        RESUME_SECONDS,
        "a span ended after the fault to be delivered",
        interval=0.05,
    )
    resumed_after = time.monotonic() - fault_ended_at
    producer.stop()
    wait_until(
        lambda: exporter.force_flush(timeout_millis=2000) and exporter.stats().queued == 0,
        30,
        "everything to be resolved",
    )
    stats = exporter.stats()
    produced = producer.ids()
    delivered = {span.span_id for span in fake.spans}
    assert exporter._pipeline.threads_alive()
    assert stats.queued == 0
    assert delivered <= produced
    assert len(produced) == stats.accepted == len(delivered) + stats.dropped_total, stats
    assert stats.balanced, stats
    _, reasons = reasons_now(exporter)
    for reason, count in stats.dropped.items():
        if count:
            assert reason in reasons, (reason, reasons)
    assert watch.most <= MAX_SEGMENT_FILES
    print(
        f"\n  produced {len(produced)}, delivered {len(delivered)}, dropped "
        f"{dict(stats.dropped)}, most segment files {watch.most}, delivery resumed "
        f"{resumed_after:.2f} s after the fault"
    )
    return stats


def spool_of(exporter: LangfuseExporter) -> Path:
    directory = exporter.spool_directory
    assert directory is not None
    return directory


# --- files disappearing ---


def test_deleting_the_oldest_unsent_segment_counts_its_spans_and_keeps_going(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.refuse_connections()
    exporter = make_exporter(spool_max_bytes=2 * MIB)  # 256 KiB segments
    directory = spool_of(exporter)
    with SegmentWatch(directory) as watch, Producer(exporter) as producer:
        wait_until(lambda: len(segment_files(directory)) >= 3, 15, "three segments")
        segment_files(directory)[0].unlink()
        fault_ended_at = time.monotonic()
        fake_langfuse.up()
        stats = settle(exporter, fake_langfuse, producer, watch, fault_ended_at)
    assert set(stats.dropped) == {"missing_segment"} and stats.dropped["missing_segment"] > 0


def remove_while_in_use(directory: Path) -> None:
    """``rm -rf``, again if the exporter wrote a file into the directory meanwhile."""
    for _ in range(20):
        try:
            shutil.rmtree(directory)
            return
        except OSError:
            continue
    raise AssertionError(f"could not remove {directory}")


def test_removing_the_slot_directory_recreates_it_and_counts_what_it_held(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.refuse_connections()
    exporter = make_exporter(spool_max_bytes=2 * MIB)
    directory = spool_of(exporter)
    with SegmentWatch(directory) as watch, Producer(exporter) as producer:
        wait_until(lambda: len(segment_files(directory)) >= 2, 15, "two segments")
        remove_while_in_use(directory)
        wait_until(directory.is_dir, 5, "the slot directory to be recreated")
        fault_ended_at = time.monotonic()
        fake_langfuse.up()
        stats = settle(exporter, fake_langfuse, producer, watch, fault_ended_at)
    assert set(stats.dropped) == {"missing_segment"} and stats.dropped["missing_segment"] > 0
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "cursor").stat().st_mode) == 0o600
    assert slot_owner(directory) == os.getpid()  # locked again


@contextlib.contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """Every file descriptor of this process in use (RLIMIT_NOFILE lowered and filled up;
    a thread takes each descriptor another thread closes, as a leaking app would)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 32, hard))
    held: list[int] = []
    done = threading.Event()

    def take_all() -> None:
        while True:
            with contextlib.suppress(OSError):
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            if done.wait(0.001):
                return

    taker = threading.Thread(target=take_all, name="fault-test-fd-taker")
    taker.start()
    try:
        yield
    finally:
        done.set()
        taker.join(5)
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_running_out_of_file_descriptors_for_3_s_loses_nothing(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The sender opens a segment for every batch, so it meets the fault. (The writer
    # closes a full segment just before creating the next, so it gets that descriptor
    # back.) The 4 MiB cap holds what piles up on disk while the sender cannot read.
    exporter = make_exporter(spool_max_bytes=4 * MIB)
    directory = spool_of(exporter)
    with (
        caplog.at_level(logging.WARNING, logger="otel_gemini.export"),
        SegmentWatch(directory) as watch,
        Producer(exporter) as producer,
    ):
        wait_until(lambda: fake_langfuse.span_count > 1000, 10, "spans flowing")
        with descriptors_exhausted():
            keep_fault(3.0)
        fault_ended_at = time.monotonic()
        stats = settle(exporter, fake_langfuse, producer, watch, fault_ended_at)
    felt = [record.name for record in caplog.records if "out of file descriptors" in record.message]
    assert felt, "the fault was not felt"
    assert stats.dropped_total == 0
    print(f"  out of file descriptors logged by {sorted(set(felt))}")


# --- a full file system ---


def hold_down_then_up(
    fake: FakeLangfuse,
    exporter: LangfuseExporter,
    down_seconds: float,
    cause: str,
    then: Callable[[], object] = lambda: None,
) -> float:
    """Keeps Langfuse down for ``down_seconds`` while the spool fills; checks health shows
    the write failure while it lasts; calls ``then`` and brings Langfuse up. The moment it
    came back."""
    went_down = time.monotonic()
    wait_until(
        lambda: cause in (exporter.stats().spool_error or ""), down_seconds, f"a {cause} error"
    )
    status, reasons = reasons_now(exporter)
    assert status is HealthStatus.UNHEALTHY and cause in reasons, reasons
    keep_fault(went_down + down_seconds - time.monotonic())
    then()
    fake.up()
    return time.monotonic()


@pytest.mark.slow
def test_a_full_disk_with_langfuse_down_drops_counted_without_file_churn_and_recovers(
    fault_fs: Callable[..., Path],
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
) -> None:
    # Langfuse is down 8 s rather than 20: the 2 MiB disk is full after about 3 s, and
    # what follows (spans held in memory, then dropped) is the same however long it lasts.
    mount = fault_fs(size="2m")
    fake_langfuse.refuse_connections()
    exporter = make_exporter(spool_dir=mount / "spool", memory_max_bytes=1 * MIB)
    directory = spool_of(exporter)
    with SegmentWatch(directory) as watch, Producer(exporter) as producer:
        fault_ended_at = hold_down_then_up(fake_langfuse, exporter, 8.0, "disk full")
        stats = settle(exporter, fake_langfuse, producer, watch, fault_ended_at)
    assert set(stats.dropped) == {"disk_full"} and stats.dropped["disk_full"] > 0
    assert exporter.stats().spool_error is None


@pytest.mark.slow
def test_out_of_inodes_with_langfuse_down_drops_counted_and_recovers(
    fault_fs: Callable[..., Path],
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
) -> None:
    mount = fault_fs(size="2m", inodes=64)
    fake_langfuse.refuse_connections()
    # 128 KiB segments: the spool needs a new file (an inode) every few hundred ms. What
    # memory holds fits under the 1 MiB cap once written (no spool_full in the count).
    exporter = make_exporter(
        spool_dir=mount / "spool", spool_max_bytes=1 * MIB, memory_max_bytes=256 * KIB
    )
    directory = spool_of(exporter)
    junk = mount / "junk"
    with SegmentWatch(directory) as watch, Producer(exporter) as producer:
        wait_until((directory / "status.json").exists, 10, "the first status file")
        junk.mkdir()
        with contextlib.suppress(OSError):  # someone else takes every inode left
            for number in range(1000):
                (junk / str(number)).touch()
        fault_ended_at = hold_down_then_up(
            fake_langfuse, exporter, 6.0, "disk full", then=lambda: shutil.rmtree(junk)
        )
        stats = settle(exporter, fake_langfuse, producer, watch, fault_ended_at)
    assert set(stats.dropped) == {"disk_full"} and stats.dropped["disk_full"] > 0


# --- damage to the segment being written ---


def damage_while_writing(
    fake: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
) -> tuple[ExportStats, str, list[str]]:
    """Langfuse down; ``damage`` hits the active segment while spans keep being written;
    Langfuse up. (stats, health reasons, the spool's warnings)."""
    fake.refuse_connections()
    exporter = make_exporter()  # 4 MiB segments: everything lands in one
    directory = spool_of(exporter)
    with (
        caplog.at_level(logging.WARNING, logger="otel_gemini.export"),
        SegmentWatch(directory) as watch,
        Producer(exporter) as producer,
    ):
        wait_until(lambda: exporter.stats().queued_disk_spans >= 3000, 10, "3000 spans on disk")
        (active,) = segment_files(directory)
        damage(active)
        written = exporter.stats().queued_disk_spans
        wait_until(
            lambda: exporter.stats().queued_disk_spans >= written + 1000, 10, "more spans written"
        )
        fault_ended_at = time.monotonic()
        fake.up()
        stats = settle(exporter, fake, producer, watch, fault_ended_at)
        _, reasons = reasons_now(exporter)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and active.name in record.getMessage()
    ]
    return stats, reasons, warnings


def test_garbage_appended_to_the_active_segment_loses_no_span(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def append_garbage(segment: Path) -> None:
        with segment.open("ab") as file:
            file.write(os.urandom(4096))

    stats, reasons, warnings = damage_while_writing(
        fake_langfuse, make_exporter, caplog, append_garbage
    )
    assert stats.dropped_total == 0
    assert stats.last_corrupt_at is not None and "damaged" in reasons
    assert any("changed by someone else at offset" in warning for warning in warnings), warnings


def test_the_active_segment_cut_to_half_loses_exactly_the_cut_spans(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def cut_to_half(segment: Path) -> None:
        os.truncate(segment, segment.stat().st_size // 2)

    stats, reasons, warnings = damage_while_writing(
        fake_langfuse, make_exporter, caplog, cut_to_half
    )
    assert set(stats.dropped) == {"corrupt"} and stats.dropped["corrupt"] > 500
    assert "corrupt" in reasons and "damaged" in reasons
    assert any("offset" in warning for warning in warnings), warnings


def test_flipped_bytes_in_the_unsent_part_lose_exactly_the_damaged_spans(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def flip(segment: Path) -> None:
        size = segment.stat().st_size
        with segment.open("r+b") as file:
            for fraction in (0.25, 0.5, 0.75):
                file.seek(int(size * fraction))
                byte = file.read(1)
                file.seek(int(size * fraction))
                file.write(bytes([byte[0] ^ 0xFF]))

    stats, reasons, warnings = damage_while_writing(fake_langfuse, make_exporter, caplog, flip)
    assert dict(stats.dropped) == {"corrupt": 3}  # one span per flipped byte, no more
    assert "corrupt" in reasons
    damage_logs = [warning for warning in warnings if "damaged at offset" in warning]
    assert len(damage_logs) == 3, warnings  # once per damage, however often it is read


# --- a slot directory that cannot be written ---


def interpreter_for(uid: int) -> tuple[str, dict[str, str]] | None:
    """A Python (and environment) with which ``uid`` can import this package, if any."""
    site_packages = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{site_packages}", "PATH": os.environ["PATH"]}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (
        sys.executable,
        shutil.which(version),
        f"/usr/local/bin/{version}",
        f"/usr/bin/{version}",
    ):
        if candidate is None:
            continue
        try:
            done = subprocess.run(
                [candidate, "-c", "import otel_gemini.export, otel_gemini.health"],
                env=env,
                user=uid,
                group=uid,
                extra_groups=[],
                capture_output=True,
                check=False,
            )
        except OSError:  # cannot even be executed by uid (e.g. under a 0700 home)
            continue
        if done.returncode == 0:
            return candidate, env
    return None


@pytest.mark.slow
def test_a_slot_made_read_only_for_10_s_holds_spans_in_memory_then_counts_and_resumes(
    fault_fs: Callable[..., Path], fake_langfuse: FakeLangfuse
) -> None:
    python = interpreter_for(NOBODY)
    if python is None:
        pytest.skip(f"no Python interpreter that uid {NOBODY} can run with this package")
    executable, env = python
    root = fault_fs(size="64m") / "spool"
    root.mkdir()
    os.chown(root, NOBODY, NOBODY)  # the producer runs as nobody: root ignores permissions
    settings = {
        **fake_langfuse.exporter_settings(),
        "spool_dir": str(root),
        "rate": 1000,
        "seconds": 15,
        # 128 KiB segments: a new file is needed about every half second; what memory
        # holds fits under the cap once written (no spool_full in the count).
        "spool_max_bytes": 1 * MIB,
        "memory_max_bytes": 256 * KIB,
    }
    producer = subprocess.Popen(
        [executable, str(Path(__file__).with_name("_fault_producer.py")), json.dumps(settings)],
        env=env,
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    reader = threading.Thread(
        target=lambda: lines.extend(json.loads(line) for line in producer.stdout or ())
    )
    reader.start()
    slot = root / "slot-0"
    try:
        wait_until(lambda: fake_langfuse.span_count > 500, 15, "spans flowing")
        with SegmentWatch(slot) as watch:
            slot.chmod(0o555)
            fault_started_at = time.monotonic()
            keep_fault(10.0)
            slot.chmod(0o700)
            fault_ended_at = time.monotonic()
            delivered_at_end = fake_langfuse.span_count
            wait_until(
                lambda: fake_langfuse.span_count > delivered_at_end,
                RESUME_SECONDS,
                "delivery to resume",
            )
            resumed_after = time.monotonic() - fault_ended_at
            assert producer.wait(60) == 0
    finally:
        if producer.poll() is None:
            producer.kill()
        reader.join(10)
    final = lines[-1]
    assert final["kind"] == "final" and final["alive"] is True
    stats = ExportStats.from_dict(final["stats"])  # type: ignore[arg-type]
    produced = set(final["ids"])  # type: ignore[arg-type]
    delivered = {span.span_id for span in fake_langfuse.spans}
    assert stats.queued == 0 and stats.balanced and delivered <= produced
    assert len(produced) == stats.accepted == len(delivered) + stats.dropped_total
    assert set(stats.dropped) == {"spool_error"} and stats.dropped["spool_error"] > 0
    during = [
        line
        for line in lines
        if line["kind"] == "status" and fault_started_at < float(line["at"]) < fault_ended_at  # type: ignore[arg-type]
    ]
    assert any(
        line["status"] == "unhealthy" and "not writable" in " ".join(line["reasons"])  # type: ignore[arg-type]
        for line in during
    )
    assert "spool_error" in " ".join(final["reasons"])  # type: ignore[arg-type]
    assert watch.most <= MAX_SEGMENT_FILES
    print(
        f"\n  produced {len(produced)}, delivered {len(delivered)}, dropped "
        f"{dict(stats.dropped)}, most segment files {watch.most}, delivery resumed "
        f"{resumed_after:.2f} s after the fault"
    )
