"""configure(): the whole pipeline from the environment, over the real client, fake Gemini
and fake Langfuse."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from google import genai
from starlette.testclient import TestClient
from telemetry_maker import telemetry_maker

import otel_gemini
from otel_gemini import Telemetry, configure, trace_attributes
from otel_gemini import _attributes as attrs
from otel_gemini.export import LangfuseConfigError
from otel_gemini.instrumentation import GeminiInstrumentor
from otel_gemini.pricing import PriceTableError
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage

pytestmark = pytest.mark.genai

FLASH = "gemini-2.5-flash"
# gemini-2.5-flash: $0.30 per 1M input tokens, $2.50 per 1M output tokens (thinking included)
USAGE = ScriptedUsage(prompt=1000, candidates=200, thoughts=100)
COST = Decimal("0.00105")  # 1000 * 0.30e-6 + 300 * 2.50e-6
LANGFUSE_VARIABLES = (
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_HOST",
)


@pytest.fixture
def make_telemetry(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    """configure() with this test's own provider and cost store, and no Langfuse probe."""
    yield from telemetry_maker(tmp_path, health_probe=False)


def _ask(fake: FakeGemini, client: genai.Client, user: str) -> str:
    fake.add_text("Lisbon.", usage=USAGE, model=FLASH)
    with trace_attributes(user_id=user, session_id=f"{user}-session"):
        response = client.models.generate_content(model=FLASH, contents="Capital of Portugal?")
    return response.text or ""


def test_one_call_prices_exports_and_stores_every_gemini_request(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    telemetry = make_telemetry()
    try:
        assert telemetry.exporter is not None and telemetry.cost_store is not None
        assert _ask(fake_gemini, gemini_client, "ana") == "Lisbon."
        assert telemetry.force_flush(timeout=10)

        (span,) = fake_langfuse_env.spans
        assert span.name == f"generate_content {FLASH}"
        assert span.attributes[attrs.USER_ID] == "ana"
        assert span.attributes[attrs.SESSION_ID] == "ana-session"
        assert span.attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] == 1000
        assert span.attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] == 300
        assert span.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
        assert Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST])) == COST

        api = TestClient(telemetry.asgi_app())
        costs = api.get("/api/observability/costs", params={"group_by": "user"}).json()
        assert [(g["user"], Decimal(g["cost"]), g["requests"]) for g in costs["groups"]] == [
            ("ana", COST, 1)
        ]
        health = api.get("/api/observability/health")
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"

        report = telemetry.health()
        assert report.stats.sent == 1
        assert report.extra["pricing"]["spans"]["priced"] == 1  # type: ignore[index]
        assert report.extra["cost_store"]["written"] == 1  # type: ignore[index]
    finally:
        telemetry.shutdown()
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_without_langfuse_settings_costs_go_to_the_local_store_only(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in LANGFUSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    telemetry = make_telemetry()
    try:
        assert telemetry.exporter is None and telemetry.health_reporter is None
        _ask(fake_gemini, gemini_client, "ben")
        assert telemetry.force_flush(timeout=10)
        report = telemetry.health()
        assert report.status.value == "healthy"
        assert "Langfuse export is off" in report.reasons[0]
        assert report.extra["cost_store"]["written"] == 1  # type: ignore[index]
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"LANGFUSE_PUBLIC_KEY": "pk-lf-1"}, "LANGFUSE_SECRET_KEY"),
        ({"LANGFUSE_SECRET_KEY": "sk-lf-hidden"}, "LANGFUSE_PUBLIC_KEY"),
        (
            {
                "LANGFUSE_PUBLIC_KEY": "pk-lf-1",
                "LANGFUSE_SECRET_KEY": "sk-lf-hidden",
                "LANGFUSE_BASE_URL": "langfuse.internal",
            },
            "LANGFUSE_BASE_URL",
        ),
    ],
)
def test_incomplete_langfuse_settings_fail_at_start_naming_the_setting(
    environment: dict[str, str],
    named: str,
    make_telemetry: Callable[..., Telemetry],
    tmp_path: Path,
) -> None:
    environment = {**environment, "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool")}
    with pytest.raises(LangfuseConfigError, match=named) as raised:
        make_telemetry(environ=environment)
    assert "sk-lf-hidden" not in str(raised.value)
    # nothing was started: configure() can be called again once the settings are fixed
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry
    telemetry = make_telemetry(environ={})
    telemetry.shutdown()


def test_a_bad_price_override_file_fails_at_start_naming_it(
    tmp_path: Path, make_telemetry: Callable[..., Telemetry]
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[model]]\nnames = ["my-model"]\ninput = -1\n')
    with pytest.raises(PriceTableError, match=r"prices\.toml"):
        make_telemetry(environ={"OTEL_GEMINI_PRICES": str(prices)})
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_a_bad_content_capture_setting_fails_before_anything_starts(
    make_telemetry: Callable[..., Telemetry],
    fake_langfuse_env: FakeLangfuse,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def our_threads() -> list[str]:
        return sorted(t.name for t in threading.enumerate() if t.name.startswith("otel-gemini"))

    before = our_threads()
    monkeypatch.setenv("OTEL_GEMINI_CONTENT_MAX_LENGTH", "lots")
    with pytest.raises(ValueError, match="OTEL_GEMINI_CONTENT_MAX_LENGTH"):
        make_telemetry()
    assert our_threads() == before  # no exporter or cost store left running
    assert not GeminiInstrumentor().is_instrumented_by_opentelemetry


def test_exporter_options_without_langfuse_are_a_clear_error(
    make_telemetry: Callable[..., Telemetry],
) -> None:
    with pytest.raises(TypeError, match="spool_max_bytes"):
        make_telemetry(environ={}, spool_max_bytes="64MiB")


def test_a_second_configure_keeps_the_first_pipeline(
    make_telemetry: Callable[..., Telemetry], caplog: pytest.LogCaptureFixture
) -> None:
    first = make_telemetry(environ={})
    try:
        with caplog.at_level(logging.WARNING, logger="otel_gemini"):
            assert make_telemetry(environ={}) is first
        assert "called again" in caplog.text
    finally:
        first.shutdown()
    second = make_telemetry(environ={})
    assert second is not first
    second.shutdown()


def test_shutdown_returns_within_its_deadline_while_langfuse_hangs(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    fake_langfuse_env: FakeLangfuse,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    fake_langfuse_env.hang()
    telemetry = make_telemetry()
    _ask(fake_gemini, gemini_client, "eve")
    started = time.monotonic()
    assert not telemetry.force_flush(timeout=0.5)
    telemetry.shutdown(timeout=1.0)
    assert time.monotonic() - started < 1.5 + 1.0  # both deadlines, plus scheduling slack
    assert fake_langfuse_env.spans == []
    assert telemetry.exporter is not None
    assert telemetry.exporter.stats().queued_disk_spans == 1  # kept for the next start


def test_configure_owns_a_new_global_provider_with_the_standard_variables(
    fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    """In a fresh process (the global provider can be set once): OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES reach Langfuse; shutdown() delivers the last spans."""
    script = textwrap.dedent(
        f"""
        import otel_gemini
        from otel_gemini.testing import ScriptedUsage
        from otel_gemini.testing import FakeGemini
        telemetry = otel_gemini.configure(health_probe=False)
        from google import genai
        from google.genai import types
        client = genai.Client(
            api_key="test-key",
            http_options=types.HttpOptions(base_url={fake_gemini.base_url!r}),
        )
        client.models.generate_content(model="{FLASH}", contents="hi")
        telemetry.shutdown(timeout=10)
        """
    )
    fake_gemini.add_text("hello", usage=USAGE, model=FLASH)
    environment = {
        **fake_langfuse.environment(),
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
        "OTEL_SERVICE_NAME": "checkout",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging",
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run([sys.executable, "-c", script], env=environment, check=True, timeout=60)
    (span,) = fake_langfuse.spans
    assert span.resource["service.name"] == "checkout"
    assert span.resource["deployment.environment"] == "staging"
    assert Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST])) == COST


def test_the_public_surface() -> None:
    assert otel_gemini.configure is configure
    assert callable(otel_gemini.Telemetry.health)


def test_configuring_again_after_shutdown_leaves_no_closed_pipeline_behind(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    first = make_telemetry(environ={})
    first.shutdown()
    second = make_telemetry(environ={})
    _ask(fake_gemini, gemini_client, "dana")
    assert second.force_flush(timeout=10)
    assert first.cost_store is not None
    assert first.cost_store.stats()["dropped"]["shutdown"] == 0  # it no longer sees spans
    assert first.cost_processor.stats()["spans"].get("priced", 0) == 0
    assert second.cost_processor.stats()["spans"]["priced"] == 1
    assert second.cost_store is not None
    assert second.cost_store.stats()["written"] == 1


def test_a_provider_configure_owns_has_no_exit_handler_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telemetry.shutdown() shuts it down within the one exit deadline; the SDK's atexit
    (registered after ours, so run first) would shut the exporter and store down unbounded."""
    from opentelemetry import trace

    from otel_gemini import _configure

    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    monkeypatch.setattr(trace, "set_tracer_provider", lambda provider: None)
    provider, owned = _configure._tracer_provider(None, "svc")
    try:
        assert owned
        assert provider._atexit_handler is None
    finally:
        provider.shutdown()


def test_a_failing_langfuse_sdk_guard_never_raises_into_the_app_and_is_logged_once(
    make_telemetry: Callable[..., Telemetry],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = make_telemetry(langfuse=False, instrument=False)
    guard = telemetry._slot.guard

    def broken() -> None:
        raise RuntimeError("guard broke")

    monkeypatch.setattr(guard, "check", broken)
    tracer = telemetry.tracer_provider.get_tracer("app")
    for _ in range(3):
        with tracer.start_as_current_span("chat") as span:  # neither start nor end raises
            span.set_attribute(attrs.GEN_AI_OPERATION_NAME, "chat")
    assert telemetry.force_flush(10)
    logged = [r for r in caplog.records if "Langfuse SDK's span processor failed" in r.message]
    assert len(logged) == 1 and logged[0].exc_info is not None
