"""``opentelemetry-instrument python app.py``: with no code change, the whole pipeline —
our spans, priced once, in Langfuse, in the cost store and in every ``OTEL_TRACES_EXPORTER``."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from otel_gemini import PriceTable, Usage
from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage
from otel_gemini.testing._langfuse_otlp import ReceivedSpan

pytestmark = pytest.mark.genai

REPO = Path(__file__).resolve().parents[1]
FLASH = "gemini-2.5-flash"
CALLS = 3
SCOPE = "otel_gemini.instrumentation"
OFFICIAL_SCOPE = "opentelemetry.instrumentation.google_genai"
# What one call costs by the shipped table: 7 input and 5 output tokens.
ONE_CALL = PriceTable.default().cost(FLASH, Usage(input_tokens=7, output_tokens=5)).total

APP = textwrap.dedent(
    """
    import os
    import sys

    from google import genai
    from google.genai import types

    if "--configure" in sys.argv:  # the app configures too: nothing may double
        import otel_gemini

        telemetry = otel_gemini.configure()
    client = genai.Client(
        api_key="fake", http_options=types.HttpOptions(base_url=os.environ["FAKE_GEMINI_URL"])
    )
    for _ in range(int(os.environ["CALLS"])):
        print("TEXT:", client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text)
    """
)


def console_spans(stdout: str) -> list[dict[str, object]]:
    """The JSON span objects the console exporter printed (one pretty-printed object each)."""
    decoder = json.JSONDecoder()
    spans, index = [], 0
    while (start := stdout.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(stdout, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        if isinstance(value, dict) and "context" in value:
            spans.append(value)
    return spans


def run_instrumented(
    fake_gemini: FakeGemini,
    tmp_path: Path,
    environment: dict[str, str],
    *app_args: str,
) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python app.py`` in a fresh process with only ``environment``
    (and what any process needs) set; the app makes ``CALLS`` calls."""
    for _ in range(CALLS):
        fake_gemini.add_text("Hello from the fake", usage=ScriptedUsage(prompt=7, candidates=5))
    app = tmp_path / "app.py"
    app.write_text(APP)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),  # nothing may land in the real home directory
        # This checkout, whichever the venv's editable install points at (entry points are
        # read from the installed metadata).
        "PYTHONPATH": str(REPO),
        "FAKE_GEMINI_URL": fake_gemini.base_url,
        "CALLS": str(CALLS),
        **environment,
    }
    instrument = Path(sys.executable).with_name("opentelemetry-instrument")
    return subprocess.run(
        [str(instrument), sys.executable, str(app), *app_args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def pipeline_environment(fake_langfuse: FakeLangfuse, tmp_path: Path) -> dict[str, str]:
    return {
        **fake_langfuse.environment(),
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
        "OTEL_SERVICE_NAME": "zero-code-app",
        # opentelemetry-distro (in the dev extra) defaults all three to OTLP over gRPC, whose
        # exporter is not installed: OpenTelemetry's own start-up would fail before any
        # instrumentation. Without opentelemetry-distro none of them needs setting.
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


def stored(tmp_path: Path) -> tuple[int, Decimal]:
    """Rows in the cost store and their total cost (USD)."""
    with sqlite3.connect(tmp_path / "costs.sqlite3") as db:
        count, femto = db.execute("SELECT count(*), sum(cost_femto) FROM generations").fetchone()
    return count, Decimal(femto or 0) / 10**15


def by_status(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    grouped: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        status = span.attributes.get(attrs.COST_STATUS)
        if isinstance(status, str):
            grouped.setdefault(status, []).append(span)
    return grouped


def assert_priced_generations(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    priced = by_status(spans)[attrs.COST_STATUS_PRICED]
    assert len(priced) == CALLS
    for span in priced:
        assert span.scope_name == SCOPE
        assert span.name == f"generate_content {FLASH}"
        assert span.resource["service.name"] == "zero-code-app"
        details = json.loads(str(span.attributes[attrs.LANGFUSE_COST_DETAILS]), parse_float=Decimal)
        assert details["total"] == ONE_CALL
    return priced


@pytest.mark.parametrize("exporter", ["none", "console"])
def test_zero_code_prices_exports_and_stores_every_request(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, exporter: str
) -> None:
    environment = {
        **pipeline_environment(fake_langfuse, tmp_path),
        "OTEL_TRACES_EXPORTER": exporter,
    }
    result = run_instrumented(fake_gemini, tmp_path, environment)

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("TEXT: Hello from the fake") == CALLS
    # Delivered before the process exited (its shutdown at exit), not left in the spool.
    priced = assert_priced_generations(fake_langfuse.spans)
    assert stored(tmp_path) == (CALLS, CALLS * ONE_CALL)
    if exporter == "console":  # the same spans, priced once, not an unpriced twin
        printed = {
            str(span["context"]["span_id"])[2:]: span["attributes"]  # type: ignore[index]
            for span in console_spans(result.stdout)
        }
        for span in priced:
            attributes = printed[span.span_id]
            assert isinstance(attributes, dict)
            assert Decimal(str(attributes[attrs.GEN_AI_USAGE_COST])) == ONE_CALL
            assert attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
        with_usage = [a for a in printed.values() if attrs.GEN_AI_USAGE_INPUT_TOKENS in a]
        assert all(attrs.COST_STATUS in a for a in with_usage)  # none went round the pricing


def test_a_cost_store_that_cannot_be_used_leaves_langfuse_export_on(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    public = tmp_path / "public"
    public.mkdir()
    public.chmod(0o777)  # another user could plant links there: the store is refused
    environment = {
        **pipeline_environment(fake_langfuse, tmp_path),
        "OTEL_GEMINI_COST_DB": str(public / "state" / "costs.sqlite3"),
    }
    result = run_instrumented(fake_gemini, tmp_path, environment)

    assert result.returncode == 0, result.stderr
    refused = [line for line in result.stderr.splitlines() if "cost store" in line]
    assert len(refused) == 1 and "runs without the cost store" in refused[0], result.stderr
    assert "Langfuse export" not in result.stderr
    assert_priced_generations(fake_langfuse.spans)
    assert not (public / "state").exists()


def test_an_explicit_configure_in_the_app_doubles_nothing(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    environment = {
        **pipeline_environment(fake_langfuse, tmp_path),
        "OTEL_TRACES_EXPORTER": "console",
    }
    result = run_instrumented(fake_gemini, tmp_path, environment, "--configure")

    assert result.returncode == 0, result.stderr
    assert "called again" not in result.stderr
    assert_priced_generations(fake_langfuse.spans)
    assert len({span.key for span in fake_langfuse.spans}) == len(fake_langfuse.spans)
    assert stored(tmp_path) == (CALLS, CALLS * ONE_CALL)
    printed = [s["context"]["span_id"] for s in console_spans(result.stdout)]  # type: ignore[index]
    assert len(printed) == len(set(printed))  # one pipeline: each span exported once


def test_auto_configuration_can_be_turned_off(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    environment = {
        **pipeline_environment(fake_langfuse, tmp_path),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_GEMINI_AUTO_CONFIGURE": "false",
    }
    result = run_instrumented(fake_gemini, tmp_path, environment)

    assert result.returncode == 0, result.stderr
    assert fake_langfuse.spans == []
    assert not (tmp_path / "costs.sqlite3").exists()
    ours = [s for s in console_spans(result.stdout) if s["name"] == f"generate_content {FLASH}"]
    assert len(ours) >= CALLS  # still instrumented, just not priced
    assert all(attrs.GEN_AI_USAGE_COST not in s["attributes"] for s in ours)  # type: ignore[operator]


def _official_instrumentation_inactive() -> str | None:
    """Why the official google-genai instrumentation would not instrument here, or None."""
    try:
        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
        from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
    except ImportError as error:
        return f"opentelemetry-instrumentation-google-genai is not installed ({error})"
    conflict = get_dependency_conflicts(
        list(GoogleGenAiSdkInstrumentor().instrumentation_dependencies())
    )
    return f"the official instrumentation is inactive here: {conflict}" if conflict else None


@pytest.mark.parametrize("app_configures", [False, True], ids=["zero-code", "with-configure"])
def test_beside_the_official_instrumentation_each_request_is_billed_once(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path, app_configures: bool
) -> None:
    """On google-genai < 3 opentelemetry-instrument also loads the official instrumentation:
    two spans per call. Ours is priced, the official one covered, once per call."""
    reason = _official_instrumentation_inactive()
    if reason is not None:
        pytest.skip(reason)
    args = ("--configure",) if app_configures else ()
    result = run_instrumented(
        fake_gemini, tmp_path, pipeline_environment(fake_langfuse, tmp_path), *args
    )

    assert result.returncode == 0, result.stderr
    assert_priced_generations(fake_langfuse.spans)
    covered = by_status(fake_langfuse.spans)[attrs.COST_STATUS_COVERED]
    assert len(covered) == CALLS
    for span in covered:
        assert span.scope_name == OFFICIAL_SCOPE
        assert span.attributes[attrs.LANGFUSE_OBSERVATION_TYPE] == "span"
        assert json.loads(str(span.attributes[attrs.LANGFUSE_COST_DETAILS])) == {"total": 0}
        assert span.attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert stored(tmp_path) == (CALLS, CALLS * ONE_CALL)
    assert result.stderr.count("opentelemetry-instrumentation-google-genai also instruments") == 1
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=google-genai" in result.stderr


# --- in process: what the post-instrument hook does to the configurator's provider ------------


def test_the_configurators_exporters_get_the_priced_span_and_configure_returns_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_gemini
    from otel_gemini._configure import configure_under_auto_instrumentation

    # As the SDK configurator leaves it for OTEL_TRACES_EXPORTER=console: one processor.
    provider = TracerProvider()
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    for name in (
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_GEMINI_COST_DB", str(tmp_path / "costs.sqlite3"))
    telemetry = configure_under_auto_instrumentation()
    assert telemetry is not None
    try:
        assert configure_under_auto_instrumentation() is None  # one pipeline per process
        with caplog.at_level(logging.DEBUG, logger="otel_gemini"):
            assert otel_gemini.configure() is telemetry
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        with caplog.at_level(logging.WARNING, logger="otel_gemini"):
            assert otel_gemini.configure(service_name="x", cost_store=False) is telemetry
        assert "without cost_store, service_name" in caplog.text

        usage = {
            attrs.GEN_AI_OPERATION_NAME: "generate_content",
            attrs.GEN_AI_REQUEST_MODEL: FLASH,
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 7,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        }
        provider.get_tracer("test").start_span("priced", attributes=usage).end()
        [span] = exported.get_finished_spans()
        assert span.attributes is not None
        assert Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST])) == ONE_CALL
        assert telemetry.cost_processor.stats()["spans"] == {"priced": 1}
    finally:
        telemetry.shutdown()
    assert stored(tmp_path) == (1, ONE_CALL)
    # With the pipeline shut down, the exporter still gets spans, as it did before.
    provider.get_tracer("test").start_span("after", attributes=usage).end()
    assert [s.name for s in exported.get_finished_spans()] == ["priced", "after"]
    provider.shutdown()


def test_post_instrument_registers_no_second_exit_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline shuts itself down at exit (_background.at_exit); one more atexit would
    shut it down a second time, outside the one exit deadline."""
    import atexit

    from otel_gemini import _auto_instrumentation

    registered: list[object] = []
    monkeypatch.delenv(_auto_instrumentation.ENV_AUTO_CONFIGURE, raising=False)
    monkeypatch.setattr(
        _auto_instrumentation, "configure_under_auto_instrumentation", lambda: object()
    )
    monkeypatch.setattr(atexit, "register", lambda *args, **kwargs: registered.append(args))
    _auto_instrumentation.post_instrument()
    assert registered == []
