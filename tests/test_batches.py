"""Batch jobs (``client.batches``) with the real google-genai client against the fake Gemini:
each inlined request is recorded as a generation, at the batch price, once its job is done."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from usage_fixtures import attributes_of, iso_z

from otel_gemini import GeminiInstrumentor, trace_attributes
from otel_gemini.testing import BatchReply, FakeGemini, ScriptedUsage
from tests.conftest import Recorded


def _inlined_batches_on_the_gemini_api() -> bool:
    if importlib.util.find_spec("google.genai.batches") is None:
        return False
    from google.genai import batches

    # google-genai 1.x made batch jobs on Vertex AI only.
    return hasattr(batches, "_BatchJob_from_mldev")


pytestmark = [
    pytest.mark.genai,
    pytest.mark.skipif(
        not _inlined_batches_on_the_gemini_api(),
        reason="this google-genai has no Gemini API batch jobs",
    ),
]

MODEL = "gemini-2.5-flash"
FIRST = ScriptedUsage(prompt=1200, cached=1000, candidates=300, thoughts=150)
SECOND = ScriptedUsage(prompt=100, candidates=20)


def requests(*texts: str) -> list[dict[str, Any]]:
    return [{"contents": [{"parts": [{"text": text}], "role": "user"}]} for text in texts]


def run_batch(fake: FakeGemini, client: Any, polls: int = 3) -> tuple[list[str], int]:
    """Creates a two-request job, then polls it: running, then succeeded (then again); the
    states seen and the job's end time (ns)."""
    job = client.batches.create(model=MODEL, src=requests("a", "b"))
    ended = time.time_ns() // 1000 * 1000  # the SDK reads microseconds
    fake.add_batch(job.name, model=MODEL, state="BATCH_STATE_RUNNING")
    for _ in range(polls - 1):
        fake.add_batch(
            job.name, model=MODEL, responses=[("A", FIRST), ("B", SECOND)], end_time=iso_z(ended)
        )
    return [client.batches.get(name=job.name).state.name for _ in range(polls)], ended


def test_each_inlined_request_is_one_generation_recorded_once_when_the_job_is_done(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    with trace_attributes(user_id="u-1"):
        states, ended = run_batch(fake_gemini, client)

    assert states == ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"]
    [create] = instrumented.spans_named("create_batch")
    assert create.name == f"create_batch {MODEL}"
    assert attributes_of(create) == {
        "gen_ai.operation.name": "create_batch",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.id": "batches/fake-batch-1",
        "langfuse.observation.type": "span",
        "otel_gemini.batch.requests": 2,
        "otel_gemini.batch.state": "JOB_STATE_PENDING",
        "otel_gemini.sdk.method": "batches.create",
        "server.address": "127.0.0.1",
        "server.port": fake_gemini.port,
        "user.id": "u-1",
    }
    generations = instrumented.spans_named("generate_content")
    assert [attributes_of(span) for span in generations] == [
        {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": MODEL,
            "gen_ai.response.model": MODEL,
            "gen_ai.response.id": f"batches/fake-batch-1-{index}",
            "gen_ai.response.finish_reasons": ("stop",),
            "otel_gemini.request.service_tier": "batch",
            "otel_gemini.sdk.method": "batches.create",
            "server.address": "127.0.0.1",
            "server.port": fake_gemini.port,
            "user.id": "u-1",
            **usage,
        }
        for index, usage in enumerate(
            (
                {
                    "gen_ai.usage.input_tokens": 1200,
                    "gen_ai.usage.output_tokens": 450,
                    "gen_ai.usage.cache_read.input_tokens": 1000,
                    "gen_ai.usage.reasoning.output_tokens": 150,
                },
                {"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20},
            )
        )
    ]
    for generation in generations:
        assert generation.parent is not None
        assert generation.parent.span_id == create.context.span_id
        assert generation.start_time == create.start_time
        assert generation.end_time == ended
    tokens = sorted(point.sum for point in instrumented.metric_points("gen_ai.client.token.usage"))
    assert tokens == [20 + 450, 100 + 1200]  # input and output of the two, once


async def test_async_batches_match_sync(fake_gemini: FakeGemini, instrumented: Recorded) -> None:
    client = fake_gemini.client()
    job = await client.aio.batches.create(model=MODEL, src=requests("a"))
    fake_gemini.add_batch(job.name, model=MODEL, responses=[("A", SECOND)])
    await client.aio.batches.get(name=job.name)

    [create] = instrumented.spans_named("create_batch")
    [generation] = instrumented.spans_named("generate_content")
    assert generation.parent is not None and generation.parent.span_id == create.context.span_id
    assert attributes_of(generation)["gen_ai.usage.input_tokens"] == 100


def test_a_job_seen_finished_in_a_list_is_recorded_there_and_only_there(
    fake_gemini: FakeGemini, instrumented: Recorded
) -> None:
    client = fake_gemini.client()
    job = client.batches.create(model=MODEL, src=requests("a", "b"))
    other = BatchReply("batches/from-elsewhere", MODEL, responses=[("C", SECOND)])
    done = BatchReply(job.name, MODEL, responses=[("A", FIRST), ("B", SECOND)])
    fake_gemini.add_batch_list([other, done])
    listed = [(item.name, item.state.name) for item in client.batches.list()]
    fake_gemini.add_batch(job.name, model=MODEL, responses=[("A", FIRST), ("B", SECOND)])
    client.batches.get(name=job.name)

    assert listed == [
        ("batches/from-elsewhere", "JOB_STATE_SUCCEEDED"),
        (job.name, "JOB_STATE_SUCCEEDED"),
    ]
    generations = instrumented.spans_named("generate_content")
    assert [attributes_of(span)["gen_ai.usage.input_tokens"] for span in generations] == [1200, 100]


def test_batch_requests_are_priced_at_the_batch_rate(
    fake_gemini: FakeGemini, priced: InMemorySpanExporter
) -> None:
    run_batch(fake_gemini, fake_gemini.client())

    costs = [
        (span.name, (span.attributes or {}).get("gen_ai.usage.cost"))
        for span in priced.get_finished_spans()
    ]
    # gemini-2.5-flash at half price: 200 fresh input x $0.15/M + 1,000 cached x $0.03/M (cache
    # reads stay at the standard rate) + 450 output x $1.25/M; then 100 x $0.15/M + 20 x $1.25/M.
    assert costs == [
        (f"create_batch {MODEL}", None),
        (f"generate_content {MODEL}", pytest.approx(0.0006225, abs=1e-12)),
        (f"generate_content {MODEL}", pytest.approx(0.00004, abs=1e-12)),
    ]


def test_the_caller_gets_the_same_jobs_as_uninstrumented(
    fake_gemini: FakeGemini, recorded: Recorded
) -> None:
    client = fake_gemini.client()

    def run() -> list[Any]:
        job = client.batches.create(model=MODEL, src=requests("a", "b"))
        fake_gemini.add_batch(job.name, model=MODEL, responses=[("A", FIRST), ("B", SECOND)])
        done = client.batches.get(name=job.name)
        return [
            (job.state, job.model),
            (done.state, done.model),
            [
                (inlined.response.text, inlined.response.usage_metadata.model_dump())
                for inlined in done.dest.inlined_responses
            ],
        ]

    plain = run()
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    try:
        instrumented = run()
    finally:
        GeminiInstrumentor().uninstrument()
    assert instrumented == plain
    assert len(recorded.spans_named("generate_content")) == 2


def test_uninstrument_restores_the_batch_clients(recorded: Recorded) -> None:
    from google.genai import batches

    methods = [
        (cls, name)
        for cls in (batches.Batches, batches.AsyncBatches)
        for name in ("_create", "get")
    ]
    before = [cls.__dict__[name] for cls, name in methods]
    GeminiInstrumentor().instrument(tracer_provider=recorded.tracer_provider)
    try:
        # wrapt's wrappers compare equal to what they wrap: compare identities.
        assert not any(
            cls.__dict__[name] is was for (cls, name), was in zip(methods, before, strict=True)
        )
    finally:
        GeminiInstrumentor().uninstrument()
    assert all(cls.__dict__[name] is was for (cls, name), was in zip(methods, before, strict=True))
