"""No self-tracing (issue 16): with the app's HTTP and SQLite instrumentations on (what
``opentelemetry-bootstrap`` installs next to google-genai), our own I/O — export POSTs, health
probes, cost-store reads and writes, Langfuse Metrics API queries, ``health --url`` — makes no
spans. Only the application's spans reach Langfuse, however many export cycles run."""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from google import genai
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from otel_gemini import Telemetry, cli, configure, trace_attributes
from otel_gemini._suppress import untraced
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage
from otel_gemini.testing._uvicorn_thread import UvicornThread

pytestmark = pytest.mark.genai

FLASH = "gemini-2.5-flash"
USAGE = ScriptedUsage(prompt=1000, candidates=200, thoughts=100)
COST = Decimal("0.00105")  # 1000 * 0.30e-6 + 300 * 2.50e-6 (gemini-2.5-flash)
CYCLES = 6
"""Export cycles: each has application work, a flush, a Langfuse probe, cost queries (local
and Langfuse), a health check over HTTP and a retention pass: what 30 s of a running app with
a 5 s export interval does, without waiting 30 s."""
SLOW_SECONDS = 30.0
SLOW_STEP = 3.0
"""The slow variant: an app step this often, for that long, at the exporter's own pace."""
GENERATION_SPAN = f"generate_content {FLASH}"
HTTP_CLIENT_SPAN = "POST"
"""The httpx instrumentation's span for google-genai's request: an application span."""


@pytest.fixture
def instrumented() -> Iterator[TracerProvider]:
    """The app's tracer provider with the httpx, requests and sqlite3 instrumentations on it,
    as ``opentelemetry-instrument`` would set them up before the app calls configure()."""
    provider = TracerProvider()
    instrumentors = (HTTPXClientInstrumentor(), RequestsInstrumentor(), SQLite3Instrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        # Instrumentors are process-wide singletons: other tests in this worker must not
        # see them.
        for instrumentor in reversed(instrumentors):
            instrumentor.uninstrument()
        provider.shutdown()


@pytest.fixture
def telemetry(
    instrumented: TracerProvider,
    fake_langfuse_env: FakeLangfuse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Telemetry]:
    # google-genai 3.x prefers httpx2; on httpx its request is traced by the instrumentation
    # above (as on google-genai 1.x), which shows suppression stays off the app's own calls.
    monkeypatch.setenv("GOOGLE_GENAI_HTTP_CLIENT", "httpx")
    telemetry = configure(
        tracer_provider=instrumented,
        cost_store=tmp_path / "costs.sqlite3",
        environ=dict(os.environ),  # fake_langfuse_env: LANGFUSE_* and a fresh spool
    )
    try:
        yield telemetry
    finally:
        telemetry.shutdown()


def test_only_the_applications_spans_reach_langfuse(
    telemetry: Telemetry,
    instrumented: TracerProvider,
    fake_gemini: FakeGemini,
    fake_langfuse_env: FakeLangfuse,
    capsys: pytest.CaptureFixture[str],
) -> None:
    langfuse = fake_langfuse_env
    reporter = telemetry.health_reporter
    store = telemetry.cost_store
    assert reporter is not None and store is not None
    gemini = fake_gemini.client()
    api = TestClient(telemetry.asgi_app())  # in-process transport: not itself instrumented
    server = UvicornThread(telemetry.asgi_app(), name="observability-api")
    server.start()
    try:
        probed_at = 0.0
        for cycle in range(CYCLES):
            _app_step(instrumented, fake_gemini, gemini, cycle)
            assert telemetry.force_flush(timeout=10)  # POSTs to Langfuse, cost-store writes

            report = reporter.refresh(timeout=10)  # GETs Langfuse's health and projects
            assert report.langfuse is not None
            assert report.langfuse.credentials_valid is True
            assert report.langfuse.checked_at > probed_at
            probed_at = report.langfuse.checked_at

            so_far = [("ana", COST * (cycle + 1), cycle + 1)]
            for source in ("local", "langfuse"):  # SQLite reads; Metrics API GETs
                costs = api.get(
                    "/api/observability/costs", params={"group_by": "user", "source": source}
                )
                assert costs.status_code == 200, costs.text
                answer = costs.json()
                assert (answer["source"], answer["stale"]) == (source, False)
                assert [
                    (g["user"], Decimal(g["cost"]), g["requests"]) for g in answer["groups"]
                ] == so_far
            latency = api.get("/api/observability/latency", params={"group_by": "model"})
            assert latency.status_code == 200, latency.text
            assert api.get("/api/observability/health").status_code == 200
            store.apply_retention()

            url = f"http://127.0.0.1:{server.port}"
            assert cli.main(["health", "--url", url, "--json"]) == 0
            assert '"status": "healthy"' in capsys.readouterr().out

        # Spans of the last cycle's own I/O, if any were made, go with this flush; the second
        # one would carry the first one's POST.
        assert telemetry.force_flush(timeout=10)
        assert telemetry.force_flush(timeout=10)
    finally:
        server.stop()

    assert_only_the_applications_spans(langfuse, CYCLES)
    assert store.stats()["written"] == CYCLES


@pytest.mark.slow
def test_30_s_of_export_at_its_own_pace_carry_only_the_applications_spans(
    telemetry: Telemetry,
    instrumented: TracerProvider,
    fake_gemini: FakeGemini,
    fake_langfuse_env: FakeLangfuse,
) -> None:
    """The issue's run: no flushes; the exporter sends as spans come while the app works,
    its health route is polled, Langfuse probed and costs asked for."""
    reporter = telemetry.health_reporter
    assert reporter is not None
    gemini = fake_gemini.client()
    api = TestClient(telemetry.asgi_app())
    start = time.monotonic()
    steps = 0
    while (now := time.monotonic()) < start + SLOW_SECONDS:
        if now >= start + steps * SLOW_STEP:
            _app_step(instrumented, fake_gemini, gemini, steps)
            steps += 1
            assert reporter.refresh(timeout=10).langfuse is not None
            for source in ("local", "langfuse"):
                costs = api.get("/api/observability/costs", params={"source": source})
                assert costs.status_code == 200, costs.text
        assert api.get("/api/observability/health").status_code == 200
        time.sleep(0.2)  # the pace a load balancer polls the health route at, not a wait
    assert steps == SLOW_SECONDS / SLOW_STEP
    fake_langfuse_env.wait_for_spans(3 * steps)
    assert telemetry.force_flush(timeout=10)
    assert telemetry.force_flush(timeout=10)
    assert_only_the_applications_spans(fake_langfuse_env, steps)


def _app_step(
    provider: TracerProvider, fake_gemini: FakeGemini, gemini: genai.Client, step: int
) -> None:
    """The application's work: a span of its own and a Gemini call (two spans: the call's
    and, inside it, its HTTP request's)."""
    with provider.get_tracer("app").start_as_current_span(f"app-step-{step}"):
        pass
    fake_gemini.add_text("Lisbon.", usage=USAGE, model=FLASH)
    with trace_attributes(user_id="ana"):
        gemini.models.generate_content(model=FLASH, contents="Capital of Portugal?")


def assert_only_the_applications_spans(langfuse: FakeLangfuse, steps: int) -> None:
    spans = langfuse.spans
    expected = Counter(
        {f"app-step-{step}": 1 for step in range(steps)}
        | {GENERATION_SPAN: steps, HTTP_CLIENT_SPAN: steps}
    )
    seen = Counter(span.name for span in spans)
    scopes = Counter(span.scope_name for span in spans)
    assert seen == expected, (
        f"{len(spans)} spans instead of {expected.total()}: {dict(seen - expected)} too many "
        f"(scopes: {dict(scopes)})"
    )
    # The HTTP spans are google-genai's requests, each inside its generate_content span.
    generations = {span.span_id for span in spans if span.name == GENERATION_SPAN}
    assert {span.parent_span_id for span in spans if span.name == HTTP_CLIENT_SPAN} == generations


def test_untraced_suppresses_our_call_only(instrumented: TracerProvider) -> None:
    recorded = InMemorySpanExporter()
    instrumented.add_span_processor(SimpleSpanProcessor(recorded))
    connection = sqlite3.connect(":memory:")  # the instrumentation's traced connection
    try:
        assert untraced(lambda: connection.cursor().execute("SELECT 1").fetchall())() == [(1,)]
        assert recorded.get_finished_spans() == ()
        connection.cursor().execute("SELECT 2")  # the app's, after ours: still traced
    finally:
        connection.close()
    assert [span.name for span in recorded.get_finished_spans()] == ["SELECT"]
