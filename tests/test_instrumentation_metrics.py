"""The GenAI client metrics, recorded on the metrics worker: exact under any sampler, linked
to their trace by exemplars, bounded with counted drops."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from polling import wait_until

from otel_gemini import GeminiInstrumentor
from otel_gemini.instrumentation import _metric_queue
from otel_gemini.instrumentation._internal_errors import internal_error_counts
from otel_gemini.testing import FakeGemini, ScriptedUsage
from tests.conftest import Recorded

pytestmark = pytest.mark.genai

MODEL = "gemini-2.5-flash"


@pytest.fixture
def sampled_tenth() -> Iterator[Recorded]:
    """Our instrumentation into a TracerProvider that records one trace in ten."""
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=TraceIdRatioBased(0.1))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    GeminiInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Recorded(tracer_provider, meter_provider, exporter, reader)
    finally:
        GeminiInstrumentor().uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _tokens(recorded: Recorded) -> dict[str, tuple[int, int]]:
    """(count, sum) of ``gen_ai.client.token.usage`` by token type."""
    return {
        dict(p.attributes)["gen_ai.token.type"]: (p.count, p.sum)
        for p in recorded.metric_points("gen_ai.client.token.usage")
    }


def test_metrics_count_every_call_with_a_ten_percent_sampler(
    fake_gemini: FakeGemini, sampled_tenth: Recorded
) -> None:
    plain, streamed = 150, 50
    client = fake_gemini.client()
    for _ in range(plain):
        fake_gemini.add_text("a", usage=ScriptedUsage(prompt=100, candidates=10, thoughts=3))
        client.models.generate_content(model=MODEL, contents="Hi")
    for _ in range(streamed):
        fake_gemini.add_stream(["a", "b", "c"], usage=ScriptedUsage(prompt=7, candidates=2))
        for _chunk in client.models.generate_content_stream(model=MODEL, contents="Hi"):
            pass

    embedded = 20  # a recorder read on the caller's thread, sampled out or not
    for _ in range(embedded):
        fake_gemini.add_embeddings([[0.1, 0.2, 0.3]])
        client.models.embed_content(model="gemini-embedding-001", contents="hello")

    # Most calls were sampled out; every one is counted.
    assert len(sampled_tenth.spans()) < (plain + streamed + embedded) // 2
    durations = {
        dict(p.attributes)["gen_ai.operation.name"]: p.count  # type: ignore[attr-defined]
        for p in sampled_tenth.metric_points("gen_ai.client.operation.duration")
    }
    assert durations == {"generate_content": plain + streamed, "embeddings": embedded}
    [first_chunk] = sampled_tenth.metric_points("gen_ai.client.operation.time_to_first_chunk")
    assert first_chunk.count == streamed  # type: ignore[attr-defined]
    assert _tokens(sampled_tenth) == {  # the embeddings report no tokens on the Gemini API
        "input": (plain + streamed, plain * 100 + streamed * 7),
        "output": (plain + streamed, plain * 13 + streamed * 2),
    }


def test_metric_exemplars_name_the_calls_span(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    fake_gemini.add_text("a", usage=ScriptedUsage(prompt=100, candidates=10))
    client = fake_gemini.client()
    client.models.generate_content(model=MODEL, contents="Hi")

    [span] = instrumented.spans()
    context = span.get_span_context()
    assert context is not None
    data = instrumented.metric_reader.get_metrics_data()  # one collection: exemplars reset
    assert data is not None
    exemplars = {
        metric.name: [(e.trace_id, e.span_id) for p in metric.data.data_points for e in p.exemplars]
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    ours = (context.trace_id, context.span_id)
    assert exemplars == {
        "gen_ai.client.operation.duration": [ours],
        "gen_ai.client.token.usage": [ours, ours],  # input, output
    }


def test_metrics_are_recorded_on_the_worker_thread(
    fake_gemini: FakeGemini, instrumented: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded_on: list[str] = []
    record_points = _metric_queue.record_points

    def spy(record: _metric_queue.MetricRecord) -> None:
        recorded_on.append(threading.current_thread().name)
        record_points(record)

    monkeypatch.setattr(_metric_queue, "record_points", spy)
    client = fake_gemini.client()
    for _ in range(3):
        fake_gemini.add_text("a", usage=ScriptedUsage(prompt=1, candidates=1))
        client.models.generate_content(model=MODEL, contents="Hi")
    wait_until(lambda: len(recorded_on) == 3, what="the metrics worker recording 3 calls")
    assert recorded_on == ["otel-gemini-metrics"] * 3


def test_a_full_metrics_queue_drops_counted_calls_and_keeps_the_rest(
    fake_gemini: FakeGemini, instrumented: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = _metric_queue.QUEUE
    queue.flush()
    monkeypatch.setattr(_metric_queue, "MAX_PENDING", 3)
    before = internal_error_counts().get(_metric_queue.QUEUE_FULL, 0)
    client = fake_gemini.client()
    with queue._recording:  # the worker cannot take records off the queue meanwhile
        for _ in range(5):
            fake_gemini.add_text("a", usage=ScriptedUsage(prompt=10, candidates=1))
            client.models.generate_content(model=MODEL, contents="Hi")
        assert internal_error_counts().get(_metric_queue.QUEUE_FULL, 0) == before + 2
    [duration] = instrumented.metric_points("gen_ai.client.operation.duration")
    assert duration.count == 3  # type: ignore[attr-defined]
    assert _tokens(instrumented)["input"] == (3, 30)


def test_a_forked_child_records_its_own_calls_on_a_worker_of_its_own(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.inprocess_client()
    fake_gemini.add_text("a", usage=ScriptedUsage(prompt=10, candidates=1))
    client.models.generate_content(model=MODEL, contents="Hi")  # starts the parent's worker
    [before] = instrumented.metric_points("gen_ai.client.operation.duration")
    assert before.count == 1  # type: ignore[attr-defined]
    for _ in range(3):
        fake_gemini.add_text("b", usage=ScriptedUsage(prompt=20, candidates=2))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it recorded, then leave without running tests' exit
        code = 1
        try:
            for _ in range(3):
                client.models.generate_content(model=MODEL, contents="Hi")
            wait_until(
                lambda: (
                    not _metric_queue.QUEUE._records
                    and any(t.name == "otel-gemini-metrics" for t in threading.enumerate())
                ),
                what="the child's metrics worker recording its calls",
            )
            [point] = instrumented.metric_points("gen_ai.client.operation.duration")
            os.write(write, f"{point.count} {_tokens(instrumented)['input']}".encode())  # type: ignore[attr-defined]
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's call (collected before the fork) and the child's three, each once.
    assert reported == "4 (4, 70)"
