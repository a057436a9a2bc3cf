"""What Langfuse and the cost store show of an Interactions API agent's billed request: the
real google-genai client against the fake Gemini, our instrumentation, pricing, exporter and
store, read back through the fake Langfuse's mapping (Langfuse's own rules, under which an
``invoke_agent`` span's usage and cost are dropped)."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from issue_usage import ISSUE_USAGE
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor, TracerProvider

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable, Usage
from otel_gemini.aggregate import CostStore
from otel_gemini.export import LangfuseExporter
from otel_gemini.testing import FakeGemini, FakeLangfuse, MappedObservation

pytestmark = [
    pytest.mark.genai,
    pytest.mark.skipif(
        importlib.util.find_spec("google.genai._gaos") is None
        and importlib.util.find_spec("google.genai._interactions") is None,
        reason="this google-genai has no Interactions API",
    ),
]

AGENT = "deep-research-pro-preview-12-2025"
MODEL = "gemini-2.5-flash"
USAGE = ISSUE_USAGE  # input 80 + 20 cached, output 50 + 10 reasoning: 160 tokens
USAGE_DETAILS = {
    "input": 80,
    "input_cached": 20,
    "output": 50,
    "output_reasoning": 10,
    "total": 160,
}
# gemini-2.5-flash: 80 × 0.30 + 20 × 0.03 + 60 × 2.50 per 1M tokens.
COST = Decimal("0.0001746")


@dataclass
class Pipeline:
    exporter: LangfuseExporter
    store: CostStore
    langfuse: FakeLangfuse

    def observations(self) -> list[MappedObservation]:
        assert self.exporter.force_flush()
        return self.langfuse.observations()

    def rows(self) -> list[dict[str, Any]]:
        assert self.store.force_flush()
        connection = sqlite3.connect(self.store.path)
        connection.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in connection.execute("SELECT * FROM generations")]
        finally:
            connection.close()


@contextmanager
def pipeline(langfuse: FakeLangfuse, tmp_path: Path) -> Iterator[Pipeline]:
    """Instrumentation, pricing, the durable exporter to ``langfuse`` and the cost store, as
    ``configure()`` fans them out."""
    exporter = LangfuseExporter(
        spool_dir=tmp_path / "spool", environ={}, **langfuse.exporter_settings()
    )
    store = CostStore(tmp_path / "costs.sqlite3", retention_days=0)
    fan_out = SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
    fan_out.add_span_processor(exporter.span_processor())
    fan_out.add_span_processor(store)
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(fan_out, PriceTable.default()))
    instrumentor = GeminiInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield Pipeline(exporter, store, langfuse)
    finally:
        instrumentor.uninstrument()
        exporter.shutdown(timeout_millis=1000)
        store.shutdown(5000)


def run_agent(fake: FakeGemini, how: str, model: str | None) -> None:
    """One billed agent request: answered finished (whole or streamed), or in the background
    and then fetched finished twice."""
    client = fake.client()
    if how != "background":
        fake.add_interaction(
            ["Fin", "dings."], usage=USAGE, interaction_id="int-a", agent=AGENT, model=model
        )
        if how == "streamed":
            list(client.interactions.create(agent=AGENT, input="Research this", stream=True))
        else:
            client.interactions.create(agent=AGENT, input="Research this")
        return
    fake.add_interaction("", status="in_progress", interaction_id="int-a", agent=AGENT)
    client.interactions.create(agent=AGENT, input="Research this", background=True)
    for _ in range(2):  # a second poll bills nothing
        fake.add_interaction(
            "Findings.", usage=USAGE, interaction_id="int-a", fetch=True, agent=AGENT, model=model
        )
        client.interactions.get("int-a")


def test_the_expected_cost_is_the_price_tables() -> None:
    usage = Usage(
        input_tokens=100, output_tokens=60, cache_read_input_tokens=20, reasoning_output_tokens=10
    )
    assert PriceTable.default().cost(MODEL, usage).total == COST


@pytest.mark.parametrize("how", ["whole", "streamed", "background"])
def test_langfuse_shows_one_priced_generation_per_billed_agent_request(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, how: str
) -> None:
    with pipeline(fake_langfuse, tmp_path) as run:
        run_agent(fake_gemini, how, MODEL)
        observations = run.observations()
        rows = run.rows()

    [agent] = [o for o in observations if o.type == "AGENT"]
    [generation] = [o for o in observations if o.type == "GENERATION"]
    assert agent.name == f"invoke_agent {AGENT}"
    assert (dict(agent.usage_details), agent.total_cost, agent.model) == ({}, None, None)
    assert generation.parent_id == agent.id
    assert generation.name == f"generate_content {MODEL}"
    assert generation.model == MODEL
    assert dict(generation.usage_details) == USAGE_DETAILS
    assert generation.total_cost == COST
    # Nothing else carries usage or cost (the fetches are plain spans).
    others = [o for o in observations if o not in (agent, generation)]
    assert {o.type for o in others} <= {"SPAN"}
    assert len(others) == (2 if how == "background" else 0)
    assert sum(o.total_usage for o in observations) == 160
    assert sum(o.total_cost or 0 for o in observations) == COST
    # The store counts the request once.
    [row] = rows
    assert (row["model"], row["operation"], row["cost_status"]) == (
        MODEL,
        "generate_content",
        "priced",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (100, 60, 160)
    assert row["cost_femto"] == 174_600_000_000


def test_an_agent_answer_naming_no_model_shows_its_tokens_and_no_invented_cost(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    with pipeline(fake_langfuse, tmp_path) as run:
        run_agent(fake_gemini, "whole", None)
        observations = run.observations()
        rows = run.rows()

    [agent] = [o for o in observations if o.type == "AGENT"]
    [generation] = [o for o in observations if o.type == "GENERATION"]
    assert generation.parent_id == agent.id
    assert generation.name == "generate_content"
    assert generation.model is None
    assert dict(generation.usage_details) == USAGE_DETAILS
    # No price known: no cost (Langfuse cannot infer one without a model), never a false 0.
    assert generation.total_cost is None
    [row] = rows
    assert (row["cost_status"], row["cost_femto"], row["total_tokens"]) == (
        "unknown_model",
        None,
        160,
    )
