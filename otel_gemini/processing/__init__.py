"""Span processors that price GenAI spans."""

from __future__ import annotations

from otel_gemini.processing._cost_processor import CostSpanProcessor
from otel_gemini.processing._priced_span import (
    PricedFigures,
    priced_figures,
    raw_attributes,
    unread_attributes,
)
from otel_gemini.processing._unrecorded_generations import UnrecordedPricing

__all__ = [
    "CostSpanProcessor",
    "PricedFigures",
    "UnrecordedPricing",
    "priced_figures",
    "raw_attributes",
    "unread_attributes",
]
