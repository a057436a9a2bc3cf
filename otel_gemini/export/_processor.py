"""The span processor an app registers: hands finished spans to a LangfuseExporter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

if TYPE_CHECKING:
    from otel_gemini.export._exporter import LangfuseExporter


class SpoolingSpanProcessor(SpanProcessor):
    """Puts each finished, sampled span in the exporter's in-memory hand-off and returns.

    ``on_end`` costs a size estimate and a list append under an uncontended lock: no
    encoding, no disk, no network on the app thread. Use it instead of a
    ``BatchSpanProcessor`` (which would only add a second queue). Shutting the processor
    down shuts the exporter down.
    """

    def __init__(self, exporter: LangfuseExporter) -> None:
        self._exporter = exporter

    @property
    def exporter(self) -> LangfuseExporter:
        return self._exporter

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self._exporter._offer(span)

    def shutdown(self) -> None:
        self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporter.force_flush(timeout_millis)
