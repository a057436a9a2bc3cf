"""LangfuseExporter against the fake Langfuse over loopback: contract, failures, lifecycle."""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from polling import wait_until

from otel_gemini import _attributes as attrs
from otel_gemini.export import (
    DROP_REASONS,
    ExportStats,
    LangfuseConfigError,
    LangfuseExporter,
    RetryPolicy,
    SpoolBusyError,
)
from otel_gemini.export._retry import parse_retry_after
from otel_gemini.testing import FakeLangfuse


class Producer:
    """A real TracerProvider whose spans go to one exporter through its processor."""

    def __init__(self, exporter: LangfuseExporter) -> None:
        self.exporter = exporter
        self.provider = TracerProvider()
        self.provider.add_span_processor(exporter.span_processor())
        self.tracer = self.provider.get_tracer("test.producer", "1.0")
        self.count = 0

    def spans(self, count: int, **attributes: object) -> list[str]:
        """Ends ``count`` generation-like spans; their span ids (hex)."""
        ids = []
        for _ in range(count):
            self.count += 1
            with self.tracer.start_as_current_span(
                "generate_content gemini-2.5-flash",
                attributes={
                    attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                    attrs.GEN_AI_USAGE_INPUT_TOKENS: self.count,
                    **attributes,  # type: ignore[dict-item]
                },
            ) as span:
                ids.append(f"{span.get_span_context().span_id:016x}")
        return ids


def assert_balanced(stats: ExportStats) -> None:
    assert stats.balanced, stats


def test_spans_arrive_as_langfuse_expects_them(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    producer = Producer(make_exporter())
    ids = producer.spans(3, **{attrs.USER_ID: "user-7"})
    assert producer.exporter.force_flush()
    received = fake_langfuse.spans
    assert [span.span_id for span in received] == ids
    assert received[0].attributes == {
        attrs.GEN_AI_OPERATION_NAME: "generate_content",
        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 1,
        attrs.USER_ID: "user-7",
    }
    assert (received[0].name, received[0].scope_name, received[0].scope_version) == (
        "generate_content gemini-2.5-flash",
        "test.producer",
        "1.0",
    )
    (request,) = fake_langfuse.requests
    assert request.status == 200
    assert (request.content_type, request.content_encoding, request.ingestion_version) == (
        "application/x-protobuf",
        "gzip",
        "4",
    )
    stats = producer.exporter.stats()
    assert (stats.accepted, stats.sent, stats.queued) == (3, 3, 0)
    assert_balanced(stats)


def test_export_under_a_batch_span_processor_is_the_same_hand_off(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    exporter = make_exporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("one"):
        pass
    provider.force_flush()
    assert exporter.force_flush()
    assert [span.name for span in fake_langfuse.spans] == ["one"]


def test_settings_come_from_the_environment_with_the_host_alias(
    fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    environ = {
        "LANGFUSE_HOST": fake_langfuse.base_url,
        "LANGFUSE_PUBLIC_KEY": fake_langfuse.public_key,
        "LANGFUSE_SECRET_KEY": fake_langfuse.secret_key,
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "from-env"),
        "OTEL_GEMINI_SPOOL_MAX_BYTES": "2MiB",
    }
    exporter = LangfuseExporter(environ=environ)
    try:
        assert exporter.base_url == fake_langfuse.base_url
        assert exporter.spool_directory == tmp_path / "from-env" / "slot-0"
        assert exporter.stats().spool_capacity_bytes == 2 * 1024 * 1024
    finally:
        exporter.shutdown()


SECRET = "sk-lf-do-not-print-me"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LANGFUSE_PUBLIC_KEY": "pk-lf-1"}, "set LANGFUSE_SECRET_KEY"),
        ({"LANGFUSE_SECRET_KEY": SECRET}, "set LANGFUSE_PUBLIC_KEY"),
        (
            {"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": SECRET + "\n"},
            "LANGFUSE_SECRET_KEY contains whitespace",
        ),
        (
            {"LANGFUSE_PUBLIC_KEY": SECRET, "LANGFUSE_SECRET_KEY": "pk-lf-1"},
            "look swapped",
        ),
        (
            {
                "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
                "LANGFUSE_SECRET_KEY": SECRET,
                "LANGFUSE_BASE_URL": "cloud.langfuse.com",
            },
            "LANGFUSE_BASE_URL must be an http",
        ),
        (
            {
                "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
                "LANGFUSE_SECRET_KEY": SECRET,
                "LANGFUSE_BASE_URL": f"https://pk:{SECRET}@cloud.langfuse.com",
            },
            "must not contain a user name or password",
        ),
        (
            {
                "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
                "LANGFUSE_SECRET_KEY": SECRET,
                "OTEL_GEMINI_SPOOL_MAX_BYTES": "lots",
            },
            "OTEL_GEMINI_SPOOL_MAX_BYTES must be a size",
        ),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_setting_not_the_secret(
    settings: dict[str, str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(LangfuseConfigError) as raised:
        LangfuseExporter(environ={**settings, "OTEL_GEMINI_SPOOL_DIR": str(tmp_path)})
    assert message in str(raised.value)
    assert "do-not-print-me" not in str(raised.value)


def test_keyword_arguments_override_the_environment(tmp_path: Path) -> None:
    with pytest.raises(LangfuseConfigError, match="secret_key= contains whitespace"):
        LangfuseExporter(
            secret_key="sk lf",
            environ={"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-ok"},
            spool_dir=tmp_path,
        )


def test_one_bad_span_among_100_is_dead_lettered_and_99_delivered(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.reject_spans_with_attribute("test.poison")
    producer = Producer(make_exporter())
    good = producer.spans(40)
    (bad,) = producer.spans(1, **{"test.poison": True})
    good += producer.spans(59)
    assert producer.exporter.force_flush()
    received = fake_langfuse.spans
    assert sorted(span.span_id for span in received) == sorted(good)
    assert len(received) == 99  # no span delivered twice while bisecting
    stats = producer.exporter.stats()
    assert (stats.sent, stats.dead_lettered, stats.queued, stats.consecutive_failures) == (
        99,
        1,
        0,
        0,
    )
    assert_balanced(stats)
    spool_directory = producer.exporter.spool_directory
    assert spool_directory is not None
    (kept,) = (spool_directory / "dead-letter").iterdir()
    assert kept.name.endswith("-http400-1.otlp")
    assert bytes.fromhex(bad) in kept.read_bytes()
    # Halving 100 down to the one bad span takes 2 requests per level, plus the first.
    assert len(fake_langfuse.requests) <= 1 + 2 * 7


def test_an_auth_failure_pauses_keeps_the_spans_and_logs_no_secret(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_langfuse.suspend_ingestion()
    producer = Producer(make_exporter())
    producer.spans(25)
    assert not producer.exporter.force_flush()
    stats = producer.exporter.stats()
    assert (stats.paused, stats.queued, stats.sent) == ("auth", 25, 0)
    assert stats.last_error == "HTTP 403 Forbidden"
    fake_langfuse.suspend_ingestion(False)
    fake_langfuse.wait_for_spans(25)  # the paused sender retries on its own
    wait_until(lambda: producer.exporter.stats().paused is None)
    secret = fake_langfuse.secret_key
    token = base64.b64encode(f"{fake_langfuse.public_key}:{secret}".encode()).decode()
    assert "403" in caplog.text
    assert secret not in caplog.text and token not in caplog.text


def test_wrong_keys_are_reported_without_echoing_them(
    fake_langfuse: FakeLangfuse,
    make_exporter: Callable[..., LangfuseExporter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    producer = Producer(make_exporter(secret_key="sk-lf-wrong-secret-value"))
    producer.spans(5)
    assert not producer.exporter.force_flush()
    stats = producer.exporter.stats()
    assert (stats.paused, stats.queued) == ("auth", 5)
    assert "HTTP 401" in caplog.text and "LANGFUSE_SECRET_KEY" in caplog.text
    assert "wrong-secret-value" not in caplog.text
    assert "wrong-secret-value" not in repr(producer.exporter)


def test_shutdown_with_langfuse_down_returns_in_time_and_the_next_start_sends_all(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.refuse_connections()
    producer = Producer(make_exporter())
    ids = producer.spans(500)
    started = time.monotonic()
    producer.exporter.shutdown(timeout_millis=1000)
    assert time.monotonic() - started < 1.2
    stats = producer.exporter.stats()
    assert (stats.queued_disk_spans, stats.queued_memory_spans, stats.sent) == (500, 0, 0)
    fake_langfuse.up()
    restarted = make_exporter()
    assert restarted.force_flush()
    assert sorted(span.span_id for span in fake_langfuse.spans) == sorted(ids)
    stats = restarted.stats()
    assert (stats.recovered, stats.sent) == (500, 500)
    assert_balanced(stats)


def test_shutdown_with_a_hanging_langfuse_returns_in_time(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.hang()
    producer = Producer(make_exporter(request_timeout=30.0))
    producer.spans(10)
    producer.exporter._pipeline.handoff.hurry()
    wait_until(lambda: producer.exporter.stats().in_flight_since is not None)
    started = time.monotonic()
    producer.exporter.shutdown(timeout_millis=500)
    assert time.monotonic() - started < 0.7
    assert producer.exporter.stats().queued_disk_spans == 10


def test_retry_after_is_honoured(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.rate_limit(retry_after=0.4)
    producer = Producer(make_exporter())
    producer.spans(5)
    fake_langfuse.wait_for_requests(1)
    assert not producer.exporter.force_flush()  # the server asked us to wait: no override
    fake_langfuse.up()
    fake_langfuse.wait_for_spans(5)
    first, second = fake_langfuse.requests[:2]
    assert (first.status, second.status) == (429, 200)
    assert second.received_at - first.received_at >= 0.39


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", now=0.0) == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412510.0) == 0.0
    assert parse_retry_after("soon", now=0.0) is None
    assert parse_retry_after("-1", now=0.0) is None


def test_backoff_uses_full_jitter_up_to_the_cap() -> None:
    import random

    policy = RetryPolicy(initial_backoff=1.0, max_backoff=8.0)
    rng = random.Random(7)
    delays = [policy.backoff(failures, rng) for failures in range(1, 40)]
    assert all(0.0 <= delay <= min(8.0, 2 ** (n)) for n, delay in enumerate(delays))
    assert max(delays) > 4.0


def test_self_metrics_follow_the_collector_names(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    producer = Producer(make_exporter(meter_provider=meters, spool_max_bytes="1MiB"))
    producer.spans(7)
    assert producer.exporter.force_flush()
    points: dict[str, list[tuple[dict[str, object], float]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points[metric.name] = [
                    (dict(point.attributes or {}), point.value)  # type: ignore[union-attr]
                    for point in metric.data.data_points
                ]
    assert points["otelcol_exporter_sent_spans"] == [({"exporter": "langfuse"}, 7)]
    assert points["otelcol_exporter_queue_capacity"] == [({"exporter": "langfuse"}, 1024 * 1024)]
    assert points["otelcol_exporter_queue_size"] == [({"exporter": "langfuse"}, 0)]
    assert points["otelcol_exporter_send_failed_spans"] == [({"exporter": "langfuse"}, 0)]
    assert points["otelcol_exporter_enqueue_failed_spans"] == [
        ({"exporter": "langfuse", "reason": reason}, 0) for reason in DROP_REASONS
    ]
    meters.shutdown()


def test_a_second_exporter_on_the_same_directory_gets_its_own_slot(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter], tmp_path: Path
) -> None:
    fake_langfuse.refuse_connections()
    first, second = Producer(make_exporter()), Producer(make_exporter())
    assert first.exporter.spool_directory != second.exporter.spool_directory
    ids = first.spans(20) + second.spans(30)
    fake_langfuse.up()
    assert first.exporter.force_flush() and second.exporter.force_flush()
    received = [span.span_id for span in fake_langfuse.spans]
    assert sorted(received) == sorted(ids)  # each exactly once
    with pytest.raises(SpoolBusyError, match=str(tmp_path / "spool")):
        make_exporter(spool_slots=2)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_never_sends_its_parents_spans(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.suspend_ingestion()  # the parent's spans stay in its spool
    producer = Producer(make_exporter())
    parent_ids = producer.spans(100)
    producer.exporter._pipeline.handoff.hurry()
    wait_until(lambda: producer.exporter.stats().paused == "auth")
    to_parent, from_child = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its spool and spans, then flush until delivered
        try:
            os.close(to_parent)
            child_ids = producer.spans(10)
            flushed = producer.exporter.force_flush(200)
            stats = producer.exporter.stats()
            report = f"{producer.exporter.spool_directory}|{stats.accepted}|{','.join(child_ids)}"
            os.write(from_child, report.encode() + b"\n")
            deadline = time.monotonic() + 10
            while not flushed and time.monotonic() < deadline:
                time.sleep(0.05)  # polling with a deadline: the pause ends on its own
                flushed = producer.exporter.force_flush(500)
        finally:
            os._exit(0 if flushed else 1)
    os.close(from_child)
    with os.fdopen(to_parent) as pipe:
        directory, accepted, child_list = pipe.readline().strip().split("|")
    assert directory.endswith("slot-1") and accepted == "10"
    fake_langfuse.suspend_ingestion(False)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    fake_langfuse.wait_for_spans(110)
    received = [span.span_id for span in fake_langfuse.spans]
    assert sorted(received) == sorted(parent_ids + child_list.split(","))


def test_behind_the_cost_processor_spans_are_priced_off_the_app_thread(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    from otel_gemini import CostSpanProcessor

    exporter = make_exporter(persist_interval=0.5)
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(exporter.span_processor()))
    with provider.get_tracer("t").start_as_current_span(
        "generate_content gemini-2.5-flash",
        attributes={
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
            attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 1_000_000,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 0,
        },
    ):
        pass
    (handed_off,) = exporter._pipeline.handoff._spans
    assert handed_off._attributes._pending is not None  # type: ignore[attr-defined]  # not priced yet
    assert exporter.force_flush()
    (received,) = fake_langfuse.spans
    assert received.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
    assert received.attributes[attrs.GEN_AI_USAGE_COST] == pytest.approx(0.30)


def test_wait_persisted_returns_once_handed_off_spans_are_on_disk(
    fake_langfuse: FakeLangfuse, make_exporter: Callable[..., LangfuseExporter]
) -> None:
    fake_langfuse.refuse_connections()
    producer = Producer(make_exporter(persist_interval=0.5))
    producer.spans(30)
    assert producer.exporter.wait_persisted(timeout_millis=2000)
    stats = producer.exporter.stats()
    assert (stats.queued_memory_spans, stats.queued_disk_spans, stats.sent) == (0, 30, 0)
