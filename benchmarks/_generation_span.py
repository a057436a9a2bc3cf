"""What the pricing benchmarks feed: one Gemini generation span's attributes, as our
instrumentation writes them, and a processor that only keeps the span (the baseline)."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

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
