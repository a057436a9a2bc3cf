"""Span processors that price GenAI spans."""

from __future__ import annotations

from otel_gemini.processing._cost_processor import CostSpanProcessor

__all__ = ["CostSpanProcessor"]
