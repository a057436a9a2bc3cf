"""Sampled-out calls are still priced and counted locally: with a sampler, Langfuse gets the
sampled share and the cost store, the cost metric and budgets get every call, each priced once.

Real google-genai client → fake Gemini, real SDK with a real sampler, real OTLP to the fake
Langfuse, real SQLite store.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import random
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from google import genai
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from voice_session import run_voice_session, voice_session_script

from otel_gemini import (
    CostSpanProcessor,
    GeminiInstrumentor,
    Telemetry,
    configure,
    trace_attributes,
)
from otel_gemini import _attributes as attrs
from otel_gemini._unrecorded import sink_for
from otel_gemini.aggregate import CostStore
from otel_gemini.budgets import budget_status
from otel_gemini.instrumentation import flush_finished_calls
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage

pytestmark = pytest.mark.genai

FLASH = "gemini-2.5-flash"
EMBEDDING = "gemini-embedding-001"
FEMTO = Decimal(10) ** 15
# gemini-2.5-flash: input $0.30, cache read $0.03, output (thinking included) $2.50 per 1M.
PLAIN_USAGE = ScriptedUsage(prompt=1000, cached=400, candidates=200, thoughts=100)
PLAIN_COST = Decimal("0.000942")  # 600 * 0.30e-6 + 400 * 0.03e-6 + 300 * 2.50e-6
STREAM_USAGE = ScriptedUsage(prompt=70, candidates=20)
STREAM_COST = Decimal("0.000071")  # 70 * 0.30e-6 + 20 * 2.50e-6
# gemini-embedding-001: input $0.15 per 1M.
EMBED_USAGE = ScriptedUsage(prompt=40)
EMBED_COST = Decimal("0.000006")  # 40 * 0.15e-6
# google-genai before usage_metadata on EmbedContentResponse (1.20, the oldest supported) gives
# embeddings no token counts to price, sampled out or not: those runs make no embeddings calls.
EMBEDDINGS_REPORT_USAGE = "usage_metadata" in genai.types.EmbedContentResponse.model_fields
PLAIN, STREAMED, EMBEDDED = 60, 20, 20 if EMBEDDINGS_REPORT_USAGE else 0
CALLS = PLAIN + STREAMED + EMBEDDED
FLASH_TOTAL = PLAIN * PLAIN_COST + STREAMED * STREAM_COST
EMBED_TOTAL = EMBEDDED * EMBED_COST
TOTAL = FLASH_TOTAL + EMBED_TOTAL


class _SeededIds(IdGenerator):
    """Trace and span ids from a seeded generator: which traces a ratio sampler keeps is the
    same on every run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


class _RecordOnly(Sampler):
    """Records every span without sampling it: processors see it, exporters skip it."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY, attributes)

    def get_description(self) -> str:
        return "RecordOnly"


class _Pipeline:
    def __init__(self, telemetry: Telemetry, sampler: Sampler, reader: InMemoryMetricReader):
        self.telemetry = telemetry
        self.sampler = sampler
        self.reader = reader

    def cost_metric(self) -> dict[str, float]:
        """``otel_gemini.client.cost`` by model."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return {
            str(point.attributes[attrs.GEN_AI_REQUEST_MODEL]): point.value
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == "otel_gemini.client.cost"
            for point in metric.data.data_points  # type: ignore[union-attr]
            if point.attributes is not None
        }


@pytest.fixture
def make_pipeline(
    tmp_path: Path, fake_langfuse_env: FakeLangfuse
) -> Iterator[Callable[[Sampler], _Pipeline]]:
    made: list[tuple[Telemetry, TracerProvider, MeterProvider]] = []

    def make(sampler: Sampler) -> _Pipeline:
        provider = TracerProvider(sampler=sampler, id_generator=_SeededIds(18))
        reader = InMemoryMetricReader()
        meters = MeterProvider(metric_readers=[reader])
        telemetry = configure(
            tracer_provider=provider,
            meter_provider=meters,
            cost_store=tmp_path / "costs.sqlite3",
            health_probe=False,
            budgets={
                "budget": [
                    {"name": "all", "scope": "total", "period": "day", "limit_usd": str(TOTAL)}
                ]
            },
        )
        made.append((telemetry, provider, meters))
        return _Pipeline(telemetry, sampler, reader)

    yield make
    for telemetry, provider, meters in made:
        telemetry.shutdown()
        provider.shutdown()
        meters.shutdown()


def _call_gemini(fake: FakeGemini, client: genai.Client) -> None:
    with trace_attributes(user_id="ana", session_id="s-1", tags=["sampled"]):
        for _ in range(PLAIN):
            fake.add_text("a", usage=PLAIN_USAGE, model=FLASH)
            client.models.generate_content(model=FLASH, contents="Hi")
        for _ in range(STREAMED):
            fake.add_stream(["a", "b", "c"], usage=STREAM_USAGE, model=FLASH)
            for _chunk in client.models.generate_content_stream(model=FLASH, contents="Hi"):
                pass
        for _ in range(EMBEDDED):
            fake.add_embeddings([[0.1, 0.2, 0.3]], usage=EMBED_USAGE, model=EMBEDDING)
            client.models.embed_content(model=EMBEDDING, contents="hello")


def _rows(pipeline: _Pipeline) -> list[tuple[str, str, str, str, str, int, int, str, str]]:
    store = pipeline.telemetry.cost_store
    assert store is not None
    with sqlite3.connect(store.path) as db:
        return list(
            db.execute(
                "SELECT trace_id, span_id, model, user_id, session_id, cost_femto, "
                "input_tokens, cost_status, tags FROM generations"
            )
        )


def _sampled(sampler: Sampler, trace_id: str) -> bool:
    decision = sampler.should_sample(None, int(trace_id, 16), "generate_content").decision
    return decision.is_sampled()


@pytest.mark.parametrize(
    "sampler",
    [TraceIdRatioBased(0.1), ParentBased(ALWAYS_OFF), _RecordOnly()],
    ids=["ratio-0.1", "parent-based-always-off", "record-only"],
)
def test_every_call_is_priced_once_and_stored_while_langfuse_gets_the_sampled_share(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_pipeline: Callable[[Sampler], _Pipeline],
    sampler: Sampler,
) -> None:
    pipeline = make_pipeline(sampler)
    _call_gemini(fake_gemini, gemini_client)
    telemetry = pipeline.telemetry
    assert telemetry.force_flush(timeout=10)

    rows = _rows(pipeline)
    assert len(rows) == CALLS
    assert len({(row[0], row[1]) for row in rows}) == CALLS
    assert {row[3:5] for row in rows} == {("ana", "s-1")}
    assert {row[8] for row in rows} == {'["sampled"]'}
    assert {row[7] for row in rows} == {attrs.COST_STATUS_PRICED}
    by_model: dict[str, Decimal] = {}
    for row in rows:
        by_model[row[2]] = by_model.get(row[2], Decimal(0)) + Decimal(row[5]) / FEMTO
    assert by_model == {FLASH: FLASH_TOTAL, **({EMBEDDING: EMBED_TOTAL} if EMBEDDED else {})}
    assert sum(row[6] for row in rows) == PLAIN * 1000 + STREAMED * 70 + EMBEDDED * 40

    # Priced once each: the pricer counted every call once, the metric adds each cost once.
    pricing = telemetry.health().extra["pricing"]
    assert pricing["spans"] == {attrs.COST_STATUS_PRICED: CALLS}  # type: ignore[index]
    assert pipeline.cost_metric() == {
        FLASH: int(FLASH_TOTAL * FEMTO) / 10**15,
        **({EMBEDDING: int(EMBED_TOTAL * FEMTO) / 10**15} if EMBEDDED else {}),
    }

    # Budgets count what the store committed: every call, so the limit (the whole spend) is hit.
    budgets = telemetry.budgets
    assert budgets is not None
    [status] = budget_status(budgets.rules, budgets.store_path)["budgets"]
    assert [Decimal(entry["spend_usd"]) for entry in status["entries"]] == [TOTAL]
    assert budgets.stats()["alerts"] == 2

    # Langfuse gets exactly the sampled calls, priced.
    sampled = {(row[0], row[1]) for row in rows if _sampled(sampler, row[0])}
    if isinstance(sampler, TraceIdRatioBased):
        assert 0 < len(sampled) < CALLS // 2
    else:
        assert sampled == set()
    assert {(span.trace_id, span.span_id) for span in fake_langfuse_env.spans} == sampled
    costs = {row[:2]: Decimal(row[5]) / FEMTO for row in rows}
    for span in fake_langfuse_env.spans:
        assert span.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
        cost = Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST]))
        assert cost == costs[(span.trace_id, span.span_id)]


def test_a_sampled_out_failure_and_stream_keep_their_error_ttft_and_service(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_pipeline: Callable[[Sampler], _Pipeline],
) -> None:
    pipeline = make_pipeline(ParentBased(ALWAYS_OFF))
    fake_gemini.add_error(400, "bad request")
    with pytest.raises(genai.errors.ClientError):
        gemini_client.models.generate_content(model=FLASH, contents="Hi")
    fake_gemini.add_stream(["a", "b", "c"], usage=STREAM_USAGE, model=FLASH)
    for _chunk in gemini_client.models.generate_content_stream(model=FLASH, contents="Hi"):
        pass
    assert pipeline.telemetry.force_flush(timeout=10)

    store = pipeline.telemetry.cost_store
    assert store is not None
    with sqlite3.connect(store.path) as db:
        rows = list(
            db.execute(
                "SELECT operation, is_error, error_type, cost_femto, cost_status, service_name, "
                "ttft_ms IS NOT NULL AND ttft_ms <= latency_ms FROM generations ORDER BY start_ns"
            )
        )
    service = pipeline.telemetry.tracer_provider.resource.attributes["service.name"]
    assert rows == [
        ("generate_content", 1, "400", None, None, service, 0),  # unpriced: no usage, no $0
        ("generate_content", 0, None, int(STREAM_COST * FEMTO), "priced", service, 1),
    ]
    assert fake_langfuse_env.spans == []


def test_without_configure_sampled_out_calls_reach_no_store(
    fake_gemini: FakeGemini, gemini_client: genai.Client, tmp_path: Path
) -> None:
    """A user's own wiring: the cost store gets what the provider's processors get, as before."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    store = CostStore(tmp_path / "own.sqlite3")
    provider.add_span_processor(CostSpanProcessor(store))
    GeminiInstrumentor().instrument(tracer_provider=provider)
    try:
        fake_gemini.add_text("a", usage=PLAIN_USAGE, model=FLASH)
        gemini_client.models.generate_content(model=FLASH, contents="Hi")
        flush_finished_calls()
        assert store.force_flush(10_000)
        assert store.stats()["written"] == 0
    finally:
        GeminiInstrumentor().uninstrument()
        store.shutdown()
        provider.shutdown()


async def test_a_sampled_out_live_session_stores_each_turn_at_the_live_price(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_pipeline: Callable[[Sampler], _Pipeline],
) -> None:
    pipeline = make_pipeline(ParentBased(ALWAYS_OFF))
    fake_gemini_live.add_live_session(voice_session_script())
    with trace_attributes(user_id="caller-7", session_id="call-2024"):
        await run_voice_session(gemini_live_client)
    assert await asyncio.to_thread(pipeline.telemetry.force_flush, 10)

    store = pipeline.telemetry.cost_store
    assert store is not None
    with sqlite3.connect(store.path) as db:
        rows = list(
            db.execute(
                "SELECT user_id, session_id, cost_femto, cost_status FROM generations "
                "ORDER BY start_ns"
            )
        )
    # The same three turns, at the same prices, as when the session is recorded (test_live.py).
    assert rows == [
        ("caller-7", "call-2024", int(Decimal(cost) * FEMTO), "priced")
        for cost in ("0.001094", "0.000751", "0.000603")
    ]
    assert fake_langfuse_env.spans == []


def test_shutdown_stops_handing_sampled_out_calls_to_the_pipeline(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    tmp_path: Path,
) -> None:
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    telemetry = configure(
        tracer_provider=provider, cost_store=tmp_path / "c.sqlite3", langfuse=False
    )
    try:
        assert sink_for(provider) is not None
        fake_gemini.add_text("a", usage=PLAIN_USAGE, model=FLASH)
        gemini_client.models.generate_content(model=FLASH, contents="Hi")
    finally:
        telemetry.shutdown()  # hands over what the metrics worker still holds, then unregisters
    assert sink_for(provider) is None
    store = telemetry.cost_store
    assert store is not None
    assert store.stats()["written"] == 1
    provider.shutdown()


# --- long-running operations: usage that arrives after the request that made it ---------------

# google-genai 1.55+ has the Interactions API; 2.x+ batch jobs on the Gemini API.
INTERACTIONS = any(
    importlib.util.find_spec(name) is not None
    for name in ("google.genai._gaos", "google.genai._interactions")
)
BATCHES = hasattr(importlib.import_module("google.genai.batches"), "_BatchJob_from_mldev")
VEO = "veo-3.0-generate-001"
AGENT = "deep-research-pro-preview-12-2025"
# gemini-2.5-flash: 200 fresh input x $0.30/M + 1,000 cached x $0.03/M + 450 output x $2.50/M.
LATE_USAGE = ScriptedUsage(prompt=1200, cached=1000, candidates=300, thoughts=150)
LATE_COST = Decimal("0.001215")
# The same at the batch tier (input and output halved, cache reads not), and a small request.
BATCH_SMALL = ScriptedUsage(prompt=100, candidates=20)
BATCH_COSTS = (Decimal("0.0006225"), Decimal("0.00004"))  # 100 x 0.15 + 20 x 1.25 for the second
VIDEO_COST = Decimal("6.40")  # 2 videos x 8 s x $0.40/s
_VIDEO = ("generate_videos", VEO, "ana", "s-1", '["late"]')
_LATE = ("generate_content", FLASH, "ana", "s-1", '["late"]')
LONG_OPERATION_ROWS = sorted(
    [
        (*_VIDEO, 0, 16, int(VIDEO_COST * FEMTO), "priced"),  # priced at its start
        *(
            [
                (*_LATE, 0, 0, None, None),  # the background create: nothing run yet
                (*_LATE, 1200, 450, int(LATE_COST * FEMTO), "priced"),  # its generation
                (*_LATE, 1200, 450, int(LATE_COST * FEMTO), "priced"),  # the background agent's
                (*_LATE, 1200, 450, int(LATE_COST * FEMTO), "priced"),  # the other agent's
            ]
            if INTERACTIONS
            else []
        ),
        *(
            [
                (*_LATE, 1200, 450, int(BATCH_COSTS[0] * FEMTO), "priced"),
                (*_LATE, 100, 20, int(BATCH_COSTS[1] * FEMTO), "priced"),
            ]
            if BATCHES
            else []
        ),
    ],
    key=str,
)


def _run_long_operations(fake: FakeGemini, client: genai.Client) -> None:
    """A video generation polled to completion; a background interaction and a background
    agent interaction fetched until finished, and again (by a second client too); an agent
    interaction answered at once; a batch job got running, then finished twice."""
    with trace_attributes(user_id="ana", session_id="s-1", tags=["late"]):
        vertex = fake.client(vertexai=True)
        operation = vertex.models.generate_videos(
            model=VEO, prompt="a cat", config={"duration_seconds": 8, "number_of_videos": 2}
        )
        while not operation.done:
            operation = vertex.operations.get(operation)
        if INTERACTIONS:
            fake.add_interaction("", status="in_progress", interaction_id="int-bg")
            client.interactions.create(model=FLASH, input="Hi", background=True)
            fake.add_interaction("", status="in_progress", agent=AGENT, interaction_id="int-ag")
            client.interactions.create(agent=AGENT, input="Research", background=True)
            # An agent answering at once: its usage goes on a generation child too.
            fake.add_interaction("Found.", usage=LATE_USAGE, agent=AGENT, model=FLASH)
            client.interactions.create(agent=AGENT, input="Research")
            fake.add_interaction(
                "", status="in_progress", interaction_id="int-bg", fetch=True, model=FLASH
            )
            client.interactions.get("int-bg")
            for _ in range(2):
                for interaction_id, agent in (("int-bg", None), ("int-ag", AGENT)):
                    fake.add_interaction(
                        "Done.",
                        usage=LATE_USAGE,
                        interaction_id=interaction_id,
                        fetch=True,
                        model=FLASH,
                        agent=agent,
                    )
            for fetcher in (client, fake.client()):  # a second client fetches them again
                fetcher.interactions.get("int-bg")
                fetcher.interactions.get("int-ag")
        if BATCHES:
            job = client.batches.create(
                model=FLASH,
                src=[{"contents": [{"parts": [{"text": t}], "role": "user"}]} for t in "ab"],
            )
            assert job.name is not None
            fake.add_batch(job.name, model=FLASH, state="BATCH_STATE_RUNNING")
            for _ in range(2):
                fake.add_batch(
                    job.name, model=FLASH, responses=[("A", LATE_USAGE), ("B", BATCH_SMALL)]
                )
            for _ in range(3):
                client.batches.get(name=job.name)


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_ON, ParentBased(ALWAYS_OFF), TraceIdRatioBased(0.5)],
    ids=["sampled-in", "parent-based-always-off", "ratio-0.5"],
)
@pytest.mark.filterwarnings("ignore:The generate_videos method with prompt")
def test_long_running_operations_are_stored_once_whatever_the_sampler(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_pipeline: Callable[[Sampler], _Pipeline],
    sampler: Sampler,
) -> None:
    pipeline = make_pipeline(sampler)
    _run_long_operations(fake_gemini, gemini_client)
    assert pipeline.telemetry.force_flush(timeout=10)

    store = pipeline.telemetry.cost_store
    assert store is not None
    with sqlite3.connect(store.path) as db:
        rows = list(
            db.execute(
                "SELECT trace_id, span_id, start_ns, operation, model, user_id, session_id, "
                "tags, input_tokens, output_tokens, cost_femto, cost_status FROM generations"
            )
        )
    # Exactly the rows of the sampled-in run: one per billed unit, at the same prices.
    assert sorted((row[3:] for row in rows), key=str) == LONG_OPERATION_ROWS
    assert len({row[:2] for row in rows}) == len(rows)
    # Priced at the create's date, as a recorded generation is: it starts with its create.
    if INTERACTIONS:
        [create] = [row for row in rows if row[3] == "generate_content" and row[10] is None]
        assert sum(row[2] == create[2] for row in rows) == 2  # the create and its generation
    pricing = pipeline.telemetry.health().extra["pricing"]
    assert pricing["spans"] == {attrs.COST_STATUS_PRICED: len(rows) - INTERACTIONS}  # type: ignore[index]
    late = LATE_COST * 3 * INTERACTIONS + sum(BATCH_COSTS) * BATCHES
    assert pipeline.cost_metric() == {
        VEO: float(VIDEO_COST),
        **({FLASH: int(late * FEMTO) / 10**15} if late else {}),
    }
    # Langfuse gets the sampled generations only, priced as stored.
    costs = {row[:2]: row[10] for row in rows}
    generations = [
        span for span in fake_langfuse_env.spans if span.attributes.get(attrs.COST_STATUS)
    ]
    for span in generations:
        cost = Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST]))
        assert int(cost * FEMTO) == costs[(span.trace_id, span.span_id)]
    sampled = {row[:2] for row in rows if _sampled(sampler, row[0])}
    if isinstance(sampler, TraceIdRatioBased) and len(rows) > 1:
        assert 0 < len(sampled) < len(rows)  # some operations recorded, some handed over
    assert {(span.trace_id, span.span_id) for span in generations} == {
        key for key in sampled if costs[key] is not None
    }


LIVE_INTERACTIONS = importlib.util.find_spec("google.genai._interactions_websocket") is not None


@pytest.mark.skipif(not LIVE_INTERACTIONS, reason="Live interactions came with google-genai 3")
@pytest.mark.filterwarnings("ignore:Live Interactions usage")
@pytest.mark.parametrize(
    "sampler", [ALWAYS_ON, ParentBased(ALWAYS_OFF)], ids=["sampled-in", "parent-based-always-off"]
)
async def test_a_sampled_out_live_interaction_is_stored_when_its_connection_completes_it(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_pipeline: Callable[[Sampler], _Pipeline],
    sampler: Sampler,
) -> None:
    pipeline = make_pipeline(sampler)
    with trace_attributes(user_id="ana"):
        fake_gemini.add_interaction("", status="idle", interaction_id="int-live")
        await gemini_client.aio.interactions.create(model=FLASH, input="Hi")
    fake_gemini.add_live_interaction(["Hel", "lo"], usage=LATE_USAGE, model=FLASH)
    async with gemini_client.aio.interactions.connect("int-live") as connection:
        await connection.send({"event_type": "input", "content": [{"type": "text", "text": "Hi"}]})
        async for event in connection.receive():
            if event.event_type == "step.stop":
                break
        await connection.complete()
        assert [event.event_type async for event in connection.receive()] == [
            "interaction.completed"
        ]
    assert await asyncio.to_thread(pipeline.telemetry.force_flush, 10)

    store = pipeline.telemetry.cost_store
    assert store is not None
    with sqlite3.connect(store.path) as db:
        rows = list(db.execute("SELECT user_id, input_tokens, cost_femto FROM generations"))
    # The create (nothing run yet), then the generation the connection completed, once.
    assert sorted(rows, key=str) == [("ana", 0, None), ("ana", 1200, int(LATE_COST * FEMTO))]
