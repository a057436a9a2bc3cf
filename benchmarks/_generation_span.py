"""What the pricing benchmarks feed: one Gemini generation span's attributes, as our
instrumentation writes them, finished spans of that shape, and a processor that only keeps
the span (the baseline)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Tracer

ATTRIBUTES: dict[str, str | int | float | list[str]] = {
    "gen_ai.operation.name": "generate_content",
    "gen_ai.provider.name": "gcp.gemini",
    "gen_ai.request.model": "gemini-2.5-flash",
    "gen_ai.response.model": "gemini-2.5-flash",
    "gen_ai.response.id": "resp-0123456789",
    "gen_ai.response.finish_reasons": ["stop"],
    "gen_ai.request.temperature": 0.7,
    "gen_ai.request.max_tokens": 1024,
    "server.address": "generativelanguage.googleapis.com",
    "server.port": 443,
    "user.id": "user-42",
    "session.id": "session-7",
    "gen_ai.usage.input_tokens": 5321,
    "gen_ai.usage.output_tokens": 812,
    "gen_ai.usage.cache_read.input_tokens": 4096,
    "gen_ai.usage.reasoning.output_tokens": 300,
    "gen_ai.usage.text.input_tokens": 5000,
    "gen_ai.usage.image.input_tokens": 321,
    "gen_ai.usage.text.output_tokens": 812,
}


class KeepLast(SpanProcessor):
    """Keeps the last span, as a batching processor's queue would: the cheapest sink."""

    last: ReadableSpan | None = None

    def on_end(self, span: ReadableSpan) -> None:
        self.last = span


def emit_span(tracer: Tracer) -> None:
    """Starts and ends one generation span (the ``ATTRIBUTES``) with ``tracer``."""
    with tracer.start_as_current_span(
        "generate_content gemini-2.5-flash", kind=SpanKind.CLIENT, attributes=ATTRIBUTES
    ):
        pass


def finished_spans(count: int) -> list[ReadableSpan]:
    """``count`` distinct finished generation spans (distinct span ids)."""
    captured: list[ReadableSpan] = []

    class _Capture(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            captured.append(span)

    provider = TracerProvider()
    provider.add_span_processor(_Capture())
    tracer = provider.get_tracer("benchmark")
    for _ in range(count):
        emit_span(tracer)
    return captured
