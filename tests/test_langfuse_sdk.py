"""Beside the Langfuse Python SDK (``get_client()``, ``@observe``, ``propagate_attributes``):
each span reaches Langfuse once, through our spool, every Gemini generation priced.

The apps run in fresh processes (the SDK's client and the global tracer provider are
per-process singletons), with the real SDK pointed at the fake Langfuse and the real
google-genai client at the fake Gemini.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gemini import (
    CostSpanProcessor,
    GeminiInstrumentor,
    PriceTable,
    Telemetry,
    Usage,
    configure,
)
from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage
from otel_gemini.testing._langfuse_mapping import MappedObservation

pytestmark = [pytest.mark.genai, pytest.mark.langfuse_sdk]

REPO = Path(__file__).resolve().parents[1]
FLASH = "gemini-2.5-flash"
CALLS = 3
SDK_SCOPE = "langfuse-sdk"
ONE_CALL = PriceTable.default().cost(FLASH, Usage(input_tokens=7, output_tokens=5)).total

APP = textwrap.dedent(
    """
    import os
    import sys

    from google import genai
    from google.genai import types
    from langfuse import get_client, observe

    try:
        from langfuse import propagate_attributes
    except ImportError:  # langfuse < 3.9: our own, around the @observe span
        propagate_attributes = None
    from otel_gemini import trace_attributes

    mode = sys.argv[1]  # sdk-first | configure-first | auto (opentelemetry-instrument)
    telemetry = None
    if mode == "configure-first":
        import otel_gemini

        telemetry = otel_gemini.configure()
    langfuse = get_client()
    if mode == "sdk-first":
        import otel_gemini

        telemetry = otel_gemini.configure()
    client = genai.Client(
        api_key="fake", http_options=types.HttpOptions(base_url=os.environ["FAKE_GEMINI_URL"])
    )
    as_type = os.environ.get("OBSERVE_AS")

    @observe(**({"as_type": as_type} if as_type else {}))
    def handle(question):
        def ask():
            return client.models.generate_content(model="gemini-2.5-flash", contents=question)

        if propagate_attributes is None:
            response = ask()
        else:
            with propagate_attributes(user_id="dana", session_id="s-1", tags=["beside-sdk"]):
                response = ask()
        if as_type == "generation":  # the user's own generation, with usage
            langfuse.update_current_generation(
                model="gemini-2.5-flash", usage_details={"input": 7, "output": 5}
            )
        return response.text

    for index in range(int(os.environ["CALLS"])):
        if propagate_attributes is None:
            with trace_attributes(user_id="dana", session_id="s-1"):
                print("TEXT:", handle(f"question {index}"), flush=True)
        else:
            print("TEXT:", handle(f"question {index}"), flush=True)
    # The SDK's own generation, another provider's call: it stays as the SDK made it.
    usage = {"input": 3, "output": 2}
    if hasattr(langfuse, "start_observation"):
        other = langfuse.start_observation(
            name="other-model", as_type="generation", model="other-model", usage_details=usage
        )
    else:  # langfuse 3.x
        other = langfuse.start_generation(
            name="other-model", model="other-model", usage_details=usage
        )
    other.end()
    langfuse.flush()
    if os.environ.get("WAIT"):  # the test takes Langfuse down and up meanwhile
        print("CALLS DONE", flush=True)
        sys.stdin.readline()
    if telemetry is not None:
        telemetry.force_flush(timeout=30)
        telemetry.shutdown(timeout=10)
    """
)


def app_command(tmp_path: Path, mode: str) -> list[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    command = [sys.executable, str(app), mode]
    if mode == "auto":
        command.insert(0, str(Path(sys.executable).with_name("opentelemetry-instrument")))
    return command


def app_environment(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, **extra: str
) -> dict[str, str]:
    for _ in range(CALLS):
        fake_gemini.add_text("Hello from the fake", usage=ScriptedUsage(prompt=7, candidates=5))
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # This checkout, whichever the venv's editable install points at.
        "PYTHONPATH": str(REPO),
        "FAKE_GEMINI_URL": fake_gemini.base_url,
        "CALLS": str(CALLS),
        **fake_langfuse.environment(),
        "LANGFUSE_HOST": fake_langfuse.base_url,  # langfuse 3.x reads this one
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        **extra,
    }


def run_app(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, mode: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """Runs the app in ``mode`` to its end (90 s at most), its output captured."""
    return subprocess.run(
        app_command(tmp_path, mode),
        env=app_environment(fake_gemini, fake_langfuse, tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def sdk_has_propagate_attributes() -> bool:
    import langfuse

    return hasattr(langfuse, "propagate_attributes")


def assert_each_once_and_priced(fake_langfuse: FakeLangfuse) -> list[MappedObservation]:
    """CALLS priced generations and CALLS @observe observations, each span received once,
    user and session on each, each generation a child of its @observe span."""
    spans = fake_langfuse.spans
    assert fake_langfuse.duplicate_span_ids == {}
    observe_ids = {span.span_id for span in spans if span.scope_name == SDK_SCOPE}
    observations = fake_langfuse.observations()
    by_id = {o.id: o for o in observations}
    all_generations = [o for o in observations if o.type == "GENERATION"]
    (other,) = [o for o in all_generations if o.name == "other-model"]  # the SDK's own
    assert dict(other.usage_details) == {"input": 3, "output": 2, "total": 5}
    assert other.id in observe_ids and other.cost_details == {}  # Langfuse prices it
    generations = [o for o in all_generations if o is not other]
    handlers = [by_id[span_id] for span_id in observe_ids - {other.id}]
    assert len(generations) == CALLS, [(o.name, o.type) for o in observations]
    assert len(handlers) == CALLS
    for generation in generations:
        assert generation.name == f"generate_content {FLASH}"
        assert generation.total_cost == ONE_CALL
        assert generation.cost_details["total"] == ONE_CALL
        assert generation.usage_details["total"] == 12
        assert (generation.user_id, generation.session_id) == ("dana", "s-1")
        parent = by_id[generation.parent_id or ""]
        # On google-genai < 3 under opentelemetry-instrument the official instrumentation's
        # span sits between them, covered (a plain span, no cost): the @observe span is above.
        while parent.id not in observe_ids and parent.type == "SPAN" and parent.parent_id:
            assert parent.total_cost in (None, 0), parent
            parent = by_id[parent.parent_id]
        assert parent.id in observe_ids
        assert parent.trace_id == generation.trace_id
    for handler in handlers:
        assert handler.name == "handle"
        assert (handler.user_id, handler.session_id) == ("dana", "s-1")
    assert len({o.trace_id for o in handlers}) == CALLS  # one trace per request
    return generations


@pytest.mark.parametrize("mode", ["sdk-first", "configure-first", "auto"])
def test_beside_the_sdk_each_span_reaches_langfuse_once_and_every_generation_is_priced(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, mode: str
) -> None:
    result = run_app(fake_gemini, fake_langfuse, tmp_path, mode)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("TEXT: Hello from the fake") == CALLS
    assert_each_once_and_priced(fake_langfuse)
    if sdk_has_propagate_attributes():
        tagged = [s for s in fake_langfuse.spans if s.attributes.get("langfuse.trace.tags")]
        assert {s.scope_name for s in tagged} >= {SDK_SCOPE, "otel_gemini.instrumentation"}


# Scaled down from the 30 s of the issue: the SDK's own exporter gives up after its 5 s
# timeout, so any outage longer than that loses its copies; ours waits in the spool.
OUTAGE_SECONDS = 8.0


def test_beside_the_sdk_langfuse_down_during_the_run_loses_and_doubles_nothing(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    fake_langfuse.refuse_connections()
    with subprocess.Popen(
        app_command(tmp_path, "sdk-first"),
        env=app_environment(fake_gemini, fake_langfuse, tmp_path, WAIT="1"),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as app:
        assert app.stdout is not None and app.stdin is not None
        started = time.monotonic()
        while (line := app.stdout.readline()) and line.strip() != "CALLS DONE":
            pass
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - started)))
        fake_langfuse.up()
        _, stderr = app.communicate("\n", timeout=60)
    assert app.returncode == 0, stderr
    assert_each_once_and_priced(fake_langfuse)


def test_a_users_own_generation_with_usage_over_ours_is_covered_not_a_second_generation(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    result = run_app(fake_gemini, fake_langfuse, tmp_path, "sdk-first", OBSERVE_AS="generation")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("a Langfuse SDK generation") == 1  # warned once
    generations = assert_each_once_and_priced(fake_langfuse)
    covered = [s for s in fake_langfuse.spans if s.scope_name == SDK_SCOPE and s.name == "handle"]
    assert len(covered) == CALLS
    for span in covered:
        assert span.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_COVERED
    assert sum((g.total_cost or Decimal(0)) for g in generations) == CALLS * ONE_CALL


# --- in process: the guard on a test-owned provider ---------------------------------------


def sdk_processor(fake_langfuse: FakeLangfuse) -> object:
    """The SDK's own span processor, to the fake Langfuse (its keyword differs by version)."""
    from langfuse._client.span_processor import LangfuseSpanProcessor

    keys = {"public_key": fake_langfuse.public_key, "secret_key": fake_langfuse.secret_key}
    try:
        return LangfuseSpanProcessor(**keys, base_url=fake_langfuse.base_url)  # type: ignore[call-arg]
    except TypeError:  # 3.x
        return LangfuseSpanProcessor(**keys, host=fake_langfuse.base_url)  # type: ignore[call-arg]


def configure_without_extras(provider: TracerProvider, **options: Any) -> Telemetry:
    """configure() on ``provider``: no cost store, health probe or instrumentation."""
    return configure(
        tracer_provider=provider,
        cost_store=False,
        health_probe=False,
        instrument=False,
        **options,
    )


def record_chat(provider: TracerProvider) -> None:
    """One ``chat`` span of the app's own, through ``provider``."""
    with provider.get_tracer("app").start_as_current_span("chat") as span:
        span.set_attribute(attrs.GEN_AI_OPERATION_NAME, "chat")


def test_an_sdk_processor_added_after_configure_exports_nothing_of_ours_until_shutdown(
    fake_langfuse: FakeLangfuse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TracerProvider()
    telemetry = configure_without_extras(
        provider, spool_dir=tmp_path / "spool", environ=fake_langfuse.environment()
    )
    processor = sdk_processor(fake_langfuse)
    caplog.set_level(logging.INFO, logger="otel_gemini")
    provider.add_span_processor(processor)  # type: ignore[arg-type]  # a lazy get_client()
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("handler"), tracer.start_as_current_span("chat") as span:
        span.set_attribute(attrs.GEN_AI_OPERATION_NAME, "chat")
    assert telemetry.force_flush(timeout=10)
    assert processor.force_flush(5000)  # type: ignore[attr-defined]
    assert sorted(s.name for s in fake_langfuse.spans) == ["chat", "handler"]
    (line,) = [r.message for r in caplog.records if "beside the Langfuse SDK" in r.message]
    assert "exports every span to Langfuse once" in line

    telemetry.shutdown()  # the SDK's processor is the path from here on
    with tracer.start_as_current_span("after") as span:
        span.set_attribute(attrs.GEN_AI_OPERATION_NAME, "chat")
    assert processor.force_flush(5000)  # type: ignore[attr-defined]
    assert sorted(s.name for s in fake_langfuse.spans) == ["after", "chat", "handler"]
    provider.shutdown()


def test_an_sdk_processor_found_at_configure_is_named_once_and_exports_nothing_of_ours(
    fake_langfuse: FakeLangfuse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = TracerProvider()
    processor = sdk_processor(fake_langfuse)
    provider.add_span_processor(processor)  # type: ignore[arg-type]  # get_client() first
    caplog.set_level(logging.INFO, logger="otel_gemini")
    telemetry = configure_without_extras(
        provider, spool_dir=tmp_path / "spool", environ=fake_langfuse.environment()
    )
    record_chat(provider)
    assert telemetry.force_flush(timeout=10)
    assert processor.force_flush(5000)  # type: ignore[attr-defined]
    assert [s.name for s in fake_langfuse.spans] == ["chat"]
    assert len([r for r in caplog.records if "beside the Langfuse SDK" in r.message]) == 1
    telemetry.shutdown()
    provider.shutdown()


def test_with_export_off_the_sdk_processor_exports_as_it_would_alone(
    fake_langfuse: FakeLangfuse,
) -> None:
    provider = TracerProvider()
    processor = sdk_processor(fake_langfuse)
    provider.add_span_processor(processor)  # type: ignore[arg-type]
    telemetry = configure_without_extras(provider, langfuse=False)
    record_chat(provider)
    assert processor.force_flush(5000)  # type: ignore[attr-defined]
    assert [s.name for s in fake_langfuse.spans] == ["chat"]  # nobody else delivers it
    telemetry.shutdown()
    provider.shutdown()


def test_an_sdk_processor_for_another_project_is_left_alone(
    fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    provider = TracerProvider()
    processor = sdk_processor(fake_langfuse)
    provider.add_span_processor(processor)  # type: ignore[arg-type]
    with FakeLangfuse(public_key="pk-lf-other-project") as ours:
        telemetry = configure_without_extras(
            provider, spool_dir=tmp_path / "spool", environ=ours.environment()
        )
        record_chat(provider)
        assert telemetry.force_flush(timeout=10)
        assert processor.force_flush(5000)  # type: ignore[attr-defined]
        assert [s.name for s in ours.spans] == ["chat"]
        telemetry.shutdown()
    assert [s.name for s in fake_langfuse.spans] == ["chat"]  # each project gets its spans
    provider.shutdown()


def test_a_langfuse_generation_stating_usage_over_a_priced_call_is_covered_and_warned_once(
    gemini_client: object, fake_gemini: FakeGemini, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(SimpleSpanProcessor(exporter)))
    GeminiInstrumentor().instrument(tracer_provider=provider)
    sdk = trace.get_tracer(SDK_SCOPE, tracer_provider=provider)
    try:
        for _ in range(2):
            fake_gemini.add_text("Hi", usage=ScriptedUsage(prompt=7, candidates=5))
            with sdk.start_as_current_span("my-generation") as mine:
                mine.set_attribute(attrs.LANGFUSE_OBSERVATION_TYPE, "generation")
                gemini_client.models.generate_content(model=FLASH, contents="Hi")  # type: ignore[attr-defined]
                mine.set_attribute(attrs.LANGFUSE_USAGE_DETAILS, '{"input":7,"output":5}')
        # A generation of the SDK with usage and no Gemini call below: passed on as it is.
        with sdk.start_as_current_span("other-provider") as other:
            other.set_attribute(attrs.LANGFUSE_OBSERVATION_TYPE, "generation")
            other.set_attribute(attrs.LANGFUSE_USAGE_DETAILS, '{"input":3}')
    finally:
        GeminiInstrumentor().uninstrument()
        provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    mine_attributes = spans["my-generation"].attributes or {}
    assert mine_attributes[attrs.COST_STATUS] == attrs.COST_STATUS_COVERED
    assert mine_attributes[attrs.LANGFUSE_OBSERVATION_TYPE] == "span"
    assert (spans["other-provider"].attributes or {}).get(attrs.COST_STATUS) is None
    assert (spans[f"generate_content {FLASH}"].attributes or {})[attrs.COST_STATUS] == "priced"
    warnings = [r for r in caplog.records if "a Langfuse SDK generation" in r.getMessage()]
    assert len(warnings) == 1


def test_messages_about_the_sdks_processor_show_no_public_key(
    fake_langfuse: FakeLangfuse, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from langfuse._client.span_processor import LangfuseSpanProcessor

    other_key = "pk-lf-another-project-9f3e"
    keys = {"public_key": other_key, "secret_key": "sk-lf-another-project-secret"}
    try:
        other = LangfuseSpanProcessor(**keys, base_url=fake_langfuse.base_url)  # type: ignore[call-arg]
    except TypeError:  # 3.x
        other = LangfuseSpanProcessor(**keys, host=fake_langfuse.base_url)  # type: ignore[call-arg]
    provider = TracerProvider()
    provider.add_span_processor(other)  # type: ignore[arg-type]
    provider.add_span_processor(sdk_processor(fake_langfuse))  # type: ignore[arg-type]
    caplog.set_level(logging.DEBUG, logger="otel_gemini")
    telemetry = configure_without_extras(
        provider, spool_dir=tmp_path / "spool", environ=fake_langfuse.environment()
    )
    try:
        with provider.get_tracer("app").start_as_current_span("chat"):
            pass
        messages = [r.getMessage() for r in caplog.records if "Langfuse SDK" in r.getMessage()]
        (two_projects,) = [m for m in messages if "its own project" in m]
        assert "pk-…9f3e" in two_projects
        assert f"pk-…{fake_langfuse.public_key[-4:]}" in two_projects
        assert [m for m in messages if "beside the Langfuse SDK" in m]
        for message in messages:
            assert other_key not in message and fake_langfuse.public_key not in message
    finally:
        telemetry.shutdown()
        provider.shutdown()
