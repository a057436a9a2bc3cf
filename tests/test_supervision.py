"""Supervised background loops: a fault in any loop is logged once, counted, shown by health
while it lasts, and the loop carries on (nothing lost, nothing sent twice)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from polling import wait_until
from telemetry_maker import telemetry_maker

from otel_gemini import _attributes as attrs
from otel_gemini import _background
from otel_gemini._background import BackgroundLoop
from otel_gemini._configure import Telemetry
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.health import HEALTH_ENDPOINT, HealthReport, HealthReporter, HealthStatus
from otel_gemini.health._reporter import report_from_status
from otel_gemini.testing import FakeLangfuse


@pytest.fixture
def exporter_retry() -> RetryPolicy:
    return RetryPolicy(initial_backoff=0.02, max_backoff=0.2, pause_interval=60)


class Kill(BaseException):
    """Ends a loop's thread, as nothing but a BaseException can."""


class Fault:
    """Wraps ``real``: raises ``error()`` while armed; counts the raises."""

    def __init__(self, real: Callable[..., Any], error: Callable[[], BaseException]) -> None:
        self.real = real
        self.error = error
        self.armed = threading.Event()
        self.armed.set()
        self.raised = 0
        self.first_raised_at: float | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed.is_set():
            self.raised += 1
            if self.first_raised_at is None:
                self.first_raised_at = time.monotonic()
            raise self.error()
        return self.real(*args, **kwargs)


def inject(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, error: Callable[[], BaseException]
) -> Fault:
    """Puts a ``Fault`` raising ``error()`` in place of ``owner.name``."""
    fault = Fault(getattr(owner, name), error)
    monkeypatch.setattr(owner, name, fault)
    return fault


def produce(provider_target: Any, count: int, *, generation: bool = False) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    if isinstance(provider_target, LangfuseExporter):
        provider.add_span_processor(provider_target.span_processor())
        tracer = provider.get_tracer("supervision-test")
    else:
        tracer = provider_target.get_tracer("supervision-test")
    for _ in range(count):
        attributes: dict[str, Any] = {}
        if generation:
            attributes = {
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
                attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
                attrs.GEN_AI_USAGE_INPUT_TOKENS: 10,
                attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
            }
        with tracer.start_as_current_span("generate_content", attributes=attributes):
            pass


def loop_failures_logged(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and f"background loop {name} failed" in record.message
    ]


def naming(report: HealthReport, name: str) -> list[str]:
    return [reason for reason in report.reasons if f"background loop {name} " in reason]


def report_naming(report: Callable[[], HealthReport], name: str) -> HealthReport:
    """The first report (polled for 2 s at most) naming loop ``name``."""
    seen: list[HealthReport] = []

    def named() -> bool:
        seen[:] = [report()]
        return bool(naming(seen[0], name))

    wait_until(named, 2, f"health to name {name}")
    return seen[0]


@dataclass
class Recovered:
    """What is checked once a faulted loop of ``exporter`` has recovered."""

    exporter: LangfuseExporter
    reporter: HealthReporter
    fake_langfuse: FakeLangfuse
    caplog: pytest.LogCaptureFixture

    def check(self, fault: Fault, index: int, name: str, *, spans: int) -> Any:
        """All ``spans`` sent once, loop ``index`` is ``name`` and running, its failure logged
        once, health healthy again. Returns the exporter's stats."""
        stats = self.exporter.stats()
        counts = (stats.accepted, stats.sent, stats.dropped_total, stats.queued)
        assert counts == (spans, spans, 0, 0)
        assert self.fake_langfuse.span_count == len(self.fake_langfuse.span_keys()) == spans
        status = self.exporter._pipeline.loops()[index]
        assert (status.name, status.state, status.errors) == (name, "running", fault.raised)
        assert len(loop_failures_logged(self.caplog, name)) == 1
        assert self.reporter.report().status is HealthStatus.HEALTHY
        return stats


# --- the supervisor itself -----------------------------------------------------------------


def test_a_failing_body_is_restarted_with_backoff_logged_once_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    suppressed: list[object] = []
    working = threading.Event()
    release = threading.Event()
    exited: list[bool] = []

    def body() -> None:
        suppressed.append(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY))
        if len(suppressed) <= 3:
            raise ValueError(f"boom {len(suppressed)}")
        working.set()
        release.wait()

    loop = BackgroundLoop("test-failing", body, on_exit=lambda: exited.append(True))
    started = time.monotonic()
    loop.start()
    assert working.wait(5)
    assert time.monotonic() - started >= 0.1 + 0.2 + 0.4  # the backoff doubled
    status = loop.status()
    assert (status.state, status.errors, status.restarts) == ("running", 3, 3)
    assert status.last_error == "ValueError: boom 3"
    assert suppressed == [True] * 4  # our own I/O is never traced
    (record,) = loop_failures_logged(caplog, "test-failing")
    assert record.exc_info is not None  # with its traceback
    loop.stop()  # asked to stop, then the body returns: finished, not an error
    release.set()
    assert loop.join(5)
    assert loop.status().state == "finished" and exited == [True]


def test_a_loop_whose_thread_dies_is_restarted_by_the_watchdog() -> None:
    fault = Fault(lambda: None, Kill)
    running = threading.Event()
    release = threading.Event()

    def body() -> None:
        fault()
        running.set()
        release.wait()

    loop = BackgroundLoop("test-killed", body).start()
    wait_until(lambda: loop.status().state == "stopped", 2, "the loop to be seen stopped")
    assert loop.status().problem == "unhealthy"
    fault.armed.clear()
    assert running.wait(5)
    status = loop.status()
    assert status.state == "running" and status.restarts >= 1
    assert status.errors == fault.raised
    loop.stop()
    release.set()
    assert loop.join(5)


# --- each loop of the pipeline -------------------------------------------------------------


def test_a_fault_in_the_spool_writer_is_survived_without_losing_a_span(
    make_exporter: Callable[..., LangfuseExporter],
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = make_exporter()
    reporter = HealthReporter(exporter, probe=False)
    spool = exporter._pipeline.spool
    assert spool is not None
    fault = inject(monkeypatch, spool, "append", lambda: RuntimeError("injected spool fault"))
    produce(exporter, 10)
    report = report_naming(reporter.report, "spool-writer")
    assert report.status is HealthStatus.DEGRADED
    assert "RuntimeError: injected spool fault" in naming(report, "spool-writer")[0]
    fault.armed.clear()
    produce(exporter, 10)
    assert exporter.force_flush(10_000)
    recovered = Recovered(exporter, reporter, fake_langfuse, caplog)
    assert recovered.check(fault, 0, "spool-writer", spans=20).balanced


def test_a_fault_in_the_sender_is_survived_without_sending_a_span_twice(
    make_exporter: Callable[..., LangfuseExporter],
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = make_exporter()
    reporter = HealthReporter(exporter, probe=False)
    transport = exporter._pipeline._transport
    assert transport is not None
    fault = inject(monkeypatch, transport, "post", lambda: RuntimeError("injected transport fault"))
    produce(exporter, 10)
    assert report_naming(reporter.report, "sender").status is not HealthStatus.HEALTHY
    fault.armed.clear()
    produce(exporter, 5)
    wait_until(lambda: exporter.stats().sent == 15, 10, "the spans to be delivered")
    assert exporter.force_flush(5_000)
    Recovered(exporter, reporter, fake_langfuse, caplog).check(fault, 1, "sender", spans=15)


@pytest.fixture
def telemetry_factory(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    yield from telemetry_maker(tmp_path, instrument=False, health_probe=False)


def test_a_fault_in_the_cost_store_writer_is_survived_without_losing_a_row(
    telemetry_factory: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = telemetry_factory(langfuse=False)
    store = telemetry.cost_store
    assert store is not None
    fault = inject(monkeypatch, store, "_write", lambda: OSError("injected store fault"))
    produce(telemetry.tracer_provider, 7, generation=True)
    assert report_naming(telemetry.health, "cost-store").status is HealthStatus.DEGRADED
    fault.armed.clear()
    produce(telemetry.tracer_provider, 3, generation=True)
    assert telemetry.force_flush(10)
    stats = store.stats()
    assert stats["written"] == 10 and sum(stats["dropped"].values()) == 0
    assert store.loop_status().errors == fault.raised
    assert len(loop_failures_logged(caplog, "cost-store")) == 1
    report = telemetry.health()
    assert report.status is HealthStatus.HEALTHY
    assert report.to_dict()["loops"]["cost-store"]["errors"] == fault.raised  # type: ignore[index]


def test_a_loop_stopped_for_good_makes_health_unhealthy_within_2_s_and_is_restarted(
    make_exporter: Callable[..., LangfuseExporter],
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = make_exporter()
    reporter = HealthReporter(exporter, probe=False)
    sender = exporter._pipeline._sender
    assert sender is not None
    fault = inject(monkeypatch, sender, "_await_turn", Kill)
    produce(exporter, 3)  # wakes the sender, whose next turn ends its thread
    wait_until(lambda: fault.first_raised_at is not None, 5, "the fault to strike")
    assert fault.first_raised_at is not None

    def unhealthy_naming_sender(report: HealthReport) -> bool:
        return report.status is HealthStatus.UNHEALTHY and any(
            "background loop sender stopped" in reason for reason in report.reasons
        )

    wait_until(lambda: unhealthy_naming_sender(reporter.report()), 2, "health to turn unhealthy")
    status_file = exporter.spool_root / "slot-0" / "status.json"

    def on_file_unhealthy() -> bool:
        if not status_file.exists():  # the fault may strike before the first write
            return False
        report = report_from_status(json.loads(status_file.read_text()), time.time())
        return unhealthy_naming_sender(report)

    # otel-gemini health --spool-dir reads the same from the owner's status.json.
    wait_until(on_file_unhealthy, 2, "status.json to say so")
    fault.armed.clear()
    produce(exporter, 2)
    wait_until(lambda: exporter.stats().sent == 5, 10, "the restarted sender to deliver")
    assert fake_langfuse.span_count == 5
    wait_until(lambda: reporter.report().status is HealthStatus.HEALTHY, 5, "health to recover")
    assert sender.loop.status().restarts >= 1


def test_the_gateways_http_listener_is_served_again_if_uvicorn_stops_on_its_own(
    make_exporter: Callable[..., LangfuseExporter], caplog: pytest.LogCaptureFixture
) -> None:
    settings = GatewaySettings(grpc_port=None, http_port=0)
    with Gateway(make_exporter(), settings=settings, probe=False).start() as gateway:
        url = f"{gateway.http_endpoint}{HEALTH_ENDPOINT}"
        assert httpx.get(url).json()["loops"]["gateway-http"]["state"] == "running"
        listener = gateway._http
        assert listener is not None
        listener._server.request_exit()  # uvicorn returns, though nobody asked the loop to stop
        wait_until(lambda: listener.loop.status().restarts == 1, 5, "the listener to restart")
        wait_until(lambda: _answers(url), 5, "the port to answer again")
        document = httpx.get(url).json()
        assert document["status"] == "healthy"
        assert document["loops"]["gateway-http"]["errors"] == 1
        assert len(loop_failures_logged(caplog, "gateway-http")) == 1
    assert listener.loop.status().state == "finished"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_supervises_its_own_loops_and_not_its_parents(
    make_exporter: Callable[..., LangfuseExporter], fake_langfuse: FakeLangfuse
) -> None:
    exporter = make_exporter()
    parent_loops = {id(exporter._pipeline._writer), id(exporter._pipeline._sender)}
    produce(exporter, 1)
    assert exporter.force_flush(5_000)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its own loops run, supervised
        code = 1
        try:
            # The parent's threads do not exist here; nothing restarts them in the child.
            forgotten = not _background._loops
            produce(exporter, 2)
            flushed = exporter.force_flush(5_000)
            pipeline = exporter._pipeline
            own = {id(pipeline._writer), id(pipeline._sender)}.isdisjoint(parent_loops)
            running = [loop.state for loop in pipeline.loops()] == ["running", "running"]
            watched = len(_background._loops) == 2 and _background._watchdog is not None
            code = 0 if (forgotten and flushed and own and running and watched) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert fake_langfuse.span_count == 3
    assert [loop.state for loop in exporter._pipeline.loops()] == ["running", "running"]


class _Flushes:
    def __init__(self, calls: list[tuple[str, float]], name: str) -> None:
        self._calls, self._name = calls, name

    def flush(self, timeout: float) -> None:
        self._calls.append((self._name, timeout))


def test_exit_callbacks_run_once_per_process_last_registered_first_within_one_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_background, "_exit_callbacks", [])
    monkeypatch.setattr(_background, "_exited_pid", 0)
    calls: list[tuple[str, float]] = []
    first, second = _Flushes(calls, "first"), _Flushes(calls, "second")
    _background.at_exit(first.flush)
    _background.at_exit(second.flush)
    gone = _Flushes(calls, "gone")
    _background.at_exit(gone.flush)
    del gone  # held weakly: an object that is gone is not kept alive nor called
    _background.run_exit_callbacks(timeout=2.0)
    _background.run_exit_callbacks(timeout=2.0)  # atexit and multiprocessing's exit both
    assert [name for name, _ in calls] == ["second", "first"]
    assert all(0 < timeout <= 2.0 for _, timeout in calls)


def test_stopping_asks_the_loop_to_stop_before_its_body_can_see_it(
    make_exporter: Callable[..., LangfuseExporter],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A body that returns once it sees ``stopping`` (or the sender's deadline) in the
    # window before loop.stop() was logged at ERROR and run again.
    exporter = make_exporter()
    produce(exporter, 3)
    assert exporter.force_flush(5_000)
    pipeline = exporter._pipeline
    writer, sender = pipeline._writer, pipeline._sender
    assert writer is not None and sender is not None
    seen: dict[str, object] = {}

    def watching(name: str, loop: BackgroundLoop, visible: Callable[[], object]) -> None:
        real = loop.stop

        def stop() -> None:
            seen[name] = visible()
            real()

        monkeypatch.setattr(loop, "stop", stop)

    watching("writer", writer.loop, lambda: writer._worker.stopping)
    watching("sender", sender.loop, lambda: sender._stop_deadline)
    exporter.shutdown()
    assert seen == {"writer": False, "sender": None}
    assert not [r for r in caplog.records if "without being asked to stop" in r.getMessage()]


def test_a_loop_without_a_last_run_finishes_when_stopped_in_its_backoff() -> None:
    runs: list[int] = []
    failed = threading.Event()

    def body() -> None:
        runs.append(1)
        failed.set()
        raise ValueError("listener failed")

    loop = BackgroundLoop("test-no-last-run", body, last_run=False, initial_backoff=5.0)
    loop.start()
    assert failed.wait(5)
    wait_until(lambda: loop.status().state == "restarting", 2, "the backoff")
    loop.stop()
    assert loop.join(5)
    assert runs == [1] and loop.status().state == "finished"


def test_a_spool_writer_batch_failing_again_and_again_is_given_up_and_counted(
    make_exporter: Callable[..., LangfuseExporter],
    fake_langfuse: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter = make_exporter()
    spool = exporter._pipeline.spool
    assert spool is not None
    fault = inject(monkeypatch, spool, "append", lambda: RuntimeError("injected spool fault"))
    produce(exporter, 10)
    wait_until(lambda: exporter.stats().dropped_total == 10, 10, "the batch to be given up")
    assert fault.raised == _background.MAX_BATCH_FAILURES
    stats = exporter.stats()
    assert stats.dropped == {"spool_error": 10} and stats.balanced
    fault.armed.clear()
    produce(exporter, 5)
    assert exporter.force_flush(10_000)
    stats = exporter.stats()
    assert (stats.accepted, stats.sent, stats.dropped_total, stats.queued) == (15, 5, 10, 0)
    assert stats.balanced and fake_langfuse.span_count == 5
    gave_up = [r for r in caplog.records if "spool-writer gave up a batch" in r.getMessage()]
    assert len(gave_up) == 1


def test_a_cost_store_batch_failing_again_and_again_is_given_up_and_counted(
    telemetry_factory: Callable[..., Telemetry], monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = telemetry_factory(langfuse=False)
    store = telemetry.cost_store
    assert store is not None
    fault = inject(monkeypatch, store, "_write", lambda: RuntimeError("injected store bug"))
    produce(telemetry.tracer_provider, 4, generation=True)
    assert telemetry.force_flush(10)  # given up: processed, counted
    assert fault.raised == _background.MAX_BATCH_FAILURES
    assert store.stats()["dropped"]["write_error"] == 4
    fault.armed.clear()
    produce(telemetry.tracer_provider, 2, generation=True)
    assert telemetry.force_flush(10)
    assert store.stats()["written"] == 2
    report = telemetry.health()
    assert any("4 generation(s) could not be written" in reason for reason in report.reasons)
