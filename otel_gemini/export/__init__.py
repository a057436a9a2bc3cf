"""Durable OTLP export to Langfuse. (Placeholder: issue 4 fills this in.)"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class LangfuseExporter(SpanExporter):
    """Exports spans to Langfuse through a durable spool (placeholder)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


__all__ = ["LangfuseExporter"]
