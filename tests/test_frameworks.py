"""Issue 26: agent frameworks on top of google-genai, the real ones against the fake Gemini.

Each test makes N billed Gemini requests through a framework with its own telemetry on, and
checks: N cost-store rows, N times the price table's cost in total, N priced generations in
the fake Langfuse, and the user and session the app gave the framework on every row and
generation. Skipped, with the reason, where a framework is not installed: ``make
test-frameworks`` installs the pinned versions in ``.venv-frameworks`` and runs these.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import Telemetry, configure, trace_attributes
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(60)]

FLASH = "gemini-2.5-flash"
USAGE = ScriptedUsage(prompt=1_000, candidates=200)
# gemini-2.5-flash: 1000 * $0.30 / 1M + 200 * $2.50 / 1M
COST = Decimal("0.0008")
FEMTO = 10**15
N = 2
USER, SESSION = "ana", "conversation-7"
INSTALL = "make test-frameworks installs it"


def _framework(module: str, package: str) -> Any:
    return pytest.importorskip(module, reason=f"{package} is not installed ({INSTALL})")


@pytest.fixture(scope="module")
def global_provider() -> TracerProvider:
    """The process's global provider: frameworks take their tracers from it (once)."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider


@pytest.fixture
def telemetry(
    global_provider: TracerProvider, fake_langfuse_env: FakeLangfuse, tmp_path: Path
) -> Iterator[Telemetry]:
    made = configure(
        tracer_provider=global_provider,
        cost_store=tmp_path / "costs.sqlite3",
        health_probe=False,
    )
    try:
        yield made
    finally:
        made.shutdown()


def _script(fake: FakeGemini) -> None:
    for _ in range(N):
        fake.add_text("Lisbon.", usage=USAGE, model=FLASH)


def assert_billed_once_each(
    telemetry: Telemetry, langfuse: FakeLangfuse, tmp_path: Path, requests: int = N
) -> None:
    """``requests`` rows and priced generations, the price table's cost each, with the
    app's user and session."""
    assert telemetry.force_flush(timeout=10)
    with sqlite3.connect(tmp_path / "costs.sqlite3") as db:
        rows = db.execute(
            "SELECT user_id, session_id, cost_femto, cost_status FROM generations"
        ).fetchall()
    assert len(rows) == requests, rows
    assert sum(row[2] for row in rows) == requests * int(COST * FEMTO)
    assert {(row[0], row[1], row[3]) for row in rows} == {(USER, SESSION, "priced")}

    observations = langfuse.observations()
    generations = [o for o in observations if o.type == "GENERATION"]
    assert len(generations) == requests, [(o.name, o.type) for o in observations]
    assert all(o.total_cost == COST for o in generations)
    assert {(o.user_id, o.session_id) for o in generations} == {(USER, SESSION)}
    # Everything else (the framework's covered spans, its agent spans) costs nothing.
    assert sum(o.total_cost or 0 for o in observations) == requests * COST
    pricing = telemetry.health().extra["pricing"]
    assert pricing["spans"].get("unknown_model", 0) == 0  # type: ignore[index,union-attr]


# --- Google ADK --------------------------------------------------------------------------------


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "schema_opt_in"])
@pytest.mark.parametrize("mode", ["sync", "async", "sse"])
def _adk_runner(
    fake_gemini: FakeGemini, monkeypatch: pytest.MonkeyPatch, *, plugin: bool = True
) -> Any:
    from google.adk.agents import LlmAgent
    from google.adk.apps import App
    from google.adk.runners import InMemoryRunner

    from otel_gemini.adk import OtelGeminiPlugin

    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake_gemini.base_url)
    monkeypatch.setenv("GOOGLE_API_KEY", "fake-key")
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    agent = LlmAgent(name="geographer", model=FLASH, instruction="Answer briefly.")
    app = App(name="app", root_agent=agent, plugins=[OtelGeminiPlugin()] if plugin else [])
    return InMemoryRunner(app=app)


def _run_adk(runner: Any, mode: str) -> None:
    """N turns of one ADK session, the runner given the user and session."""
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.genai import types

    config = RunConfig(streaming_mode=StreamingMode.SSE if mode == "sse" else StreamingMode.NONE)

    def message() -> Any:
        return types.Content(role="user", parts=[types.Part(text="Capital?")])

    async def run_async() -> None:
        for _ in range(N):
            async for _event in runner.run_async(
                user_id=USER, session_id=SESSION, new_message=message(), run_config=config
            ):
                pass

    asyncio.run(
        runner.session_service.create_session(app_name="app", user_id=USER, session_id=SESSION)
    )
    if mode == "sync":  # ADK runs the agent on a thread of its own
        for _ in range(N):
            for _event in runner.run(user_id=USER, session_id=SESSION, new_message=message()):
                pass
    else:
        asyncio.run(run_async())


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "schema_opt_in"])
@pytest.mark.parametrize("mode", ["sync", "async", "sse"])
def test_adk_each_request_once_with_the_runners_user_and_session(
    telemetry: Telemetry,
    fake_gemini: FakeGemini,
    fake_langfuse_env: FakeLangfuse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    opt_in: bool,
) -> None:
    _framework("google.adk", "google-adk")
    if opt_in:  # adds ADK's call_llm span, with usage, over its generate_content span
        monkeypatch.setenv("ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN", "1")
    else:
        monkeypatch.delenv("ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN", raising=False)
    runner = _adk_runner(fake_gemini, monkeypatch)
    _script(fake_gemini)

    _run_adk(runner, mode)

    assert len(fake_gemini.requests) == N
    assert_billed_once_each(telemetry, fake_langfuse_env, tmp_path)
    names = {o.name for o in fake_langfuse_env.observations()}
    assert ("call_llm" in names) is opt_in


@pytest.mark.parametrize("plugin", [False, True], ids=["no_plugin", "plugin"])
def test_adk_the_apps_trace_attributes_win_and_the_session_needs_no_plugin(
    telemetry: Telemetry,
    fake_gemini: FakeGemini,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plugin: bool,
) -> None:
    _framework("google.adk", "google-adk")
    runner = _adk_runner(fake_gemini, monkeypatch, plugin=plugin)
    _script(fake_gemini)

    with trace_attributes(user_id="from-the-app"):
        _run_adk(runner, "async")

    assert telemetry.force_flush(timeout=10)
    with sqlite3.connect(tmp_path / "costs.sqlite3") as db:
        rows = db.execute("SELECT user_id, session_id FROM generations").fetchall()
    # The session from ADK's gen_ai.conversation.id; the user the app set, over the runner's.
    assert rows == [("from-the-app", SESSION)] * N


# --- pydantic-ai -------------------------------------------------------------------------------


# The price table's model, which pydantic-ai's own model list calls retired: not our subject.
@pytest.mark.filterwarnings("ignore:Model .* is deprecated by its provider")
@pytest.mark.parametrize("aggregated", [True, False], ids=["aggregated_usage", "usage_names"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_pydantic_ai_each_request_once_with_the_apps_user_and_conversation(
    telemetry: Telemetry,
    fake_gemini: FakeGemini,
    fake_langfuse_env: FakeLangfuse,
    tmp_path: Path,
    mode: str,
    aggregated: bool,
) -> None:
    _framework("pydantic_ai", "pydantic-ai-slim[google]")
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.providers.google import GoogleProvider

    client = fake_gemini.client()
    model = GoogleModel(FLASH, provider=GoogleProvider(client=client))
    # aggregated=False: the invoke_agent span states the run's usage as gen_ai.usage.*, with
    # no model: a grouping span, never priced (nor an unknown_model).
    settings = InstrumentationSettings(use_aggregated_usage_attribute_names=aggregated)
    agent = Agent(model, capabilities=[Instrumentation(settings=settings)])
    _script(fake_gemini)

    async def run_async(stream: bool) -> None:
        for _ in range(N):
            if stream:
                async with agent.run_stream("Capital?", conversation_id=SESSION) as result:
                    async for _text in result.stream_output():
                        pass
            else:
                await agent.run("Capital?", conversation_id=SESSION)

    # The user from trace_attributes(); the session is pydantic-ai's gen_ai.conversation.id.
    with trace_attributes(user_id=USER):
        if mode == "sync":
            for _ in range(N):
                agent.run_sync("Capital?", conversation_id=SESSION)
        else:
            asyncio.run(run_async(stream=mode == "stream"))

    assert len(fake_gemini.requests) == N
    assert_billed_once_each(telemetry, fake_langfuse_env, tmp_path)
    # Its agent runs stay in Langfuse as the agents they are, without usage or cost.
    agents = [o for o in fake_langfuse_env.observations() if o.type == "AGENT"]
    assert len(agents) == N
    assert all(not o.usage_details and o.total_cost is None for o in agents)


# --- LangChain, with and without LangSmith's OTel mode ------------------------------------------


@pytest.mark.parametrize("langsmith", [False, True], ids=["plain", "langsmith_otel"])
@pytest.mark.parametrize("mode", ["sync", "async", "stream"])
def test_langchain_each_request_once_with_the_apps_user_and_session(
    telemetry: Telemetry,
    fake_gemini: FakeGemini,
    fake_langfuse_env: FakeLangfuse,
    tmp_path: Path,
    mode: str,
    langsmith: bool,
) -> None:
    _framework("langchain_google_genai", "langchain-google-genai")
    from langchain_google_genai import ChatGoogleGenerativeAI

    llm = ChatGoogleGenerativeAI(
        model=FLASH, google_api_key="fake-key", base_url=fake_gemini.base_url
    )
    _script(fake_gemini)

    async def ask_async() -> None:
        for _ in range(N):  # one loop: the model's async client stays bound to it
            await llm.ainvoke("Capital?")

    def ask() -> None:
        if mode == "async":
            asyncio.run(ask_async())
            return
        for _ in range(N):
            if mode == "sync":
                llm.invoke("Capital?")
            else:
                for _chunk in llm.stream("Capital?"):
                    pass

    with trace_attributes(user_id=USER, session_id=SESSION):
        if langsmith:
            ls = _framework("langsmith", "langsmith")
            # LangSmith's LLM span goes to our provider, in a trace of its own.
            client = ls.Client(api_key="fake-key", tracing_mode="otel")
            with ls.tracing_context(enabled=True, client=client):
                ask()
            client.flush()
        else:
            ask()

    assert len(fake_gemini.requests) == N
    assert_billed_once_each(telemetry, fake_langfuse_env, tmp_path)
    # LangSmith's spans (one per request, in traces of their own) are covered, not priced.
    spans = telemetry.health().extra["pricing"]["spans"]  # type: ignore[index]
    assert spans.get("covered", 0) == (N if langsmith else 0)  # type: ignore[union-attr]
