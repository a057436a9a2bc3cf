"""Span processors that price GenAI spans. (Placeholder: issue 3 fills this in.)"""

from __future__ import annotations

from opentelemetry.sdk.trace import SpanProcessor


class CostSpanProcessor(SpanProcessor):
    """Prices GenAI spans and forwards an enriched copy downstream (placeholder)."""

    def __init__(self, downstream: SpanProcessor, prices: object | None = None) -> None:
        self._downstream = downstream


__all__ = ["CostSpanProcessor"]
