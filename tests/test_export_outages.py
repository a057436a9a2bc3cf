"""The acceptance scenarios: outages, a full spool, a crash, a damaged spool.

The real exporter, a real TracerProvider and the fake Langfuse over loopback. Retry timings
are scaled down (``FAST_RETRY``) so recovery is seen within the run; production defaults
only change how soon after an outage the backlog starts moving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import _attributes as attrs
from otel_gemini.export import ExportStats, LangfuseExporter, RetryPolicy
from otel_gemini.testing import FakeLangfuse

FAST_RETRY = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, pause_interval=1.0)
MIB = 1024 * 1024


@pytest.fixture
def exporter_retry() -> RetryPolicy:
    return FAST_RETRY


def produce(
    exporter: LangfuseExporter,
    total: int,
    seconds: float,
    at_half_time: Callable[[], None] | None = None,
) -> list[str]:
    """Ends ``total`` GenAI-like spans evenly over ``seconds``; their span ids in order."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(exporter.span_processor())
    tracer = provider.get_tracer("outage-test")
    ids: list[str] = []
    start = time.monotonic()
    chunk = max(1, total // (int(seconds * 100) or 1))  # about 100 chunks per second
    switched = at_half_time is None
    while len(ids) < total:
        for _ in range(min(chunk, total - len(ids))):
            with tracer.start_as_current_span(
                "generate_content gemini-2.5-flash",
                attributes={
                    attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                    attrs.GEN_AI_USAGE_INPUT_TOKENS: 120,
                    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
                    attrs.USER_ID: "user-7",
                    attrs.LANGFUSE_USAGE_DETAILS: '{"input":120,"output":40}',
                },
            ) as span:
                ids.append(f"{span.get_span_context().span_id:016x}")
        elapsed = time.monotonic() - start
        if not switched and elapsed >= seconds / 2:
            switched = True
            assert at_half_time is not None
            at_half_time()
        ahead = len(ids) / total * seconds - elapsed
        if ahead > 0:
            time.sleep(ahead)  # pacing the producer, not synchronising the test
    return ids


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def assert_balanced(stats: ExportStats) -> None:
    assert stats.balanced, stats


OUTAGES: dict[str, Callable[[FakeLangfuse], None]] = {
    "connection refused": FakeLangfuse.refuse_connections,
    "503": lambda fake: fake.respond_with(503),
    "429 with Retry-After": lambda fake: fake.rate_limit(retry_after=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("outage", list(OUTAGES))
def test_20000_spans_over_10_s_with_langfuse_down_for_the_first_5_s_all_arrive(
    outage: str,
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    capsys: pytest.CaptureFixture[str],
) -> None:
    exporter = make_exporter()
    OUTAGES[outage](fake_langfuse)
    rss_before = rss()
    ids = produce(exporter, 20_000, 10.0, at_half_time=fake_langfuse.up)
    assert exporter.force_flush(timeout_millis=15_000)
    rss_growth = rss() - rss_before
    received = Counter(span.span_id for span in fake_langfuse.spans)
    assert set(received) == set(ids)
    assert sum(received.values()) == 20_000  # and none twice
    stats = exporter.stats()
    assert (stats.accepted, stats.sent, stats.dropped_total, stats.queued) == (20_000, 20_000, 0, 0)
    assert stats.send_failed > 0  # the outage was seen
    assert_balanced(stats)
    assert rss_growth < 64 * MIB
    with capsys.disabled():
        print(f"\n[{outage}] RSS growth over the run: {rss_growth / MIB:.1f} MiB")


@pytest.mark.slow
def test_langfuse_down_for_the_whole_run_with_a_small_spool_drops_oldest_and_counts(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_langfuse.refuse_connections()
    exporter = make_exporter(spool_max_bytes=256 * 1024)
    produce(exporter, 2_000, 1.0)  # warm up allocations before measuring
    rss_before = rss()
    ids = produce(exporter, 20_000, 4.0)
    exporter.force_flush(timeout_millis=2_000)
    rss_growth = rss() - rss_before
    stats = exporter.stats()
    assert_balanced(stats)
    assert stats.accepted == 22_000 and stats.sent == 0
    assert stats.dropped["spool_full"] == 22_000 - stats.queued > 10_000
    spool_directory = exporter.spool_directory
    assert spool_directory is not None
    on_disk = sum(path.stat().st_size for path in spool_directory.glob("seg-*.spool"))
    assert on_disk <= 256 * 1024
    assert rss_growth < 16 * MIB
    fake_langfuse.up()
    assert exporter.force_flush(timeout_millis=10_000)
    received = [span.span_id for span in fake_langfuse.spans]
    assert received == ids[-len(received) :]  # what survived is the newest, in order
    assert len(received) == stats.queued
    with capsys.disabled():
        print(f"\n[down all run, 256 KiB spool] RSS growth: {rss_growth / MIB:.1f} MiB")


@pytest.mark.slow
# At least once: the batch in flight when the producer died is sent again by its successor.
@pytest.mark.allow_duplicate_spans
def test_a_producer_killed_mid_stream_loses_nothing_that_ended_a_second_before(
    tmp_path: Path, fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.slow(0.05)  # requests in flight when the kill comes
    log = tmp_path / "ended.log"
    producer = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("_export_producer.py")),
            str(tmp_path / "spool"),
            fake_langfuse.base_url,
            fake_langfuse.public_key,
            fake_langfuse.secret_key,
            str(log),
            "2000",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not log.exists() or log.stat().st_size < 5000 * 31:  # 5000 spans ended
            assert producer.poll() is None, "the producer died on its own"
            assert time.monotonic() < deadline, "the producer is too slow"
            time.sleep(0.05)
        fake_langfuse.refuse_connections()  # half the backlog is in the spool only
        while log.stat().st_size < 7000 * 31:
            time.sleep(0.05)
        killed_at = time.monotonic()
        os.kill(producer.pid, signal.SIGKILL)
    finally:
        producer.wait(10)
    ended = [line.split() for line in log.read_text().splitlines()]
    must_arrive = {span_id for span_id, at in ended if float(at) <= killed_at - 1.0}
    assert len(must_arrive) > 4000
    fake_langfuse.up()
    restarted = make_exporter()
    assert restarted.force_flush(timeout_millis=10_000)
    received = Counter(span.span_id for span in fake_langfuse.spans)
    assert must_arrive <= set(received)
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= 200  # at most one batch (the producer's batch_max_spans)
    assert_balanced(restarted.stats())


def test_a_damaged_spool_starts_delivers_every_intact_span_and_counts_the_rest(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.refuse_connections()
    exporter = make_exporter(spool_max_bytes=2 * MIB)  # 256 KiB segments
    ids = produce(exporter, 2_000, 0.5)
    exporter.shutdown(timeout_millis=1000)
    assert exporter.stats().queued_disk_spans == 2_000
    directory = exporter.spool_directory
    assert directory is not None
    segments = sorted(directory.glob("seg-*.spool"))
    assert len(segments) >= 3
    with segments[0].open("r+b") as file:  # flipped bytes in the middle of the first
        file.seek(segments[0].stat().st_size // 2)
        file.write(b"\xff\x00\xff\x00")
    with segments[-1].open("r+b") as file:  # the newest is cut short
        file.truncate(segments[-1].stat().st_size * 2 // 3)
    (directory / "seg-9000000000000000.spool").write_bytes(os.urandom(4096))  # garbage
    fake_langfuse.up()
    restarted = make_exporter()
    assert restarted.force_flush(timeout_millis=10_000)
    stats = restarted.stats()
    received = [span.span_id for span in fake_langfuse.spans]
    assert len(received) == len(set(received)) == stats.sent
    assert set(received) <= set(ids)
    assert stats.dropped["corrupt"] == 2_000 - stats.sent > 0
    assert stats.recovered == 2_000
    assert_balanced(stats)
    assert (directory / "quarantine").is_dir()
