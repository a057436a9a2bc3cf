"""No self-tracing (issue 16): with the app's HTTP and SQLite instrumentations on (what
``opentelemetry-bootstrap`` installs next to google-genai), our own I/O — export POSTs, health
probes, cost-store reads and writes, Langfuse Metrics API queries, ``health --url`` — makes no
spans. Only the application's spans reach Langfuse, however many export cycles run."""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
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
    tracer = instrumented.get_tracer("app")
    gemini = fake_gemini.client()
    api = TestClient(telemetry.asgi_app())  # in-process transport: not itself instrumented
    server = UvicornThread(telemetry.asgi_app(), name="observability-api")
    server.start()
    try:
        probed_at = 0.0
        for cycle in range(CYCLES):
            with tracer.start_as_current_span(f"app-step-{cycle}"):
                pass
            fake_gemini.add_text("Lisbon.", usage=USAGE, model=FLASH)
            with trace_attributes(user_id="ana"):
                gemini.models.generate_content(model=FLASH, contents="Capital of Portugal?")
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

    spans = langfuse.spans
    expected = Counter(
        {f"app-step-{cycle}": 1 for cycle in range(CYCLES)}
        | {f"generate_content {FLASH}": CYCLES, HTTP_CLIENT_SPAN: CYCLES}
    )
    seen = Counter(span.name for span in spans)
    scopes = Counter(span.scope_name for span in spans)
    assert seen == expected, (
        f"{len(spans)} spans instead of {expected.total()}: {dict(seen - expected)} too many "
        f"(scopes: {dict(scopes)})"
    )
    # The HTTP spans are google-genai's requests, each inside its generate_content span.
    generations = {s.span_id for s in spans if s.name == f"generate_content {FLASH}"}
    assert {s.parent_span_id for s in spans if s.name == HTTP_CLIENT_SPAN} == generations
    assert store.stats()["written"] == CYCLES


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
