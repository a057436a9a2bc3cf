"""Durable OTLP export to Langfuse.

``LangfuseExporter`` hands spans off in memory, keeps them in a crash-safe on-disk spool
and sends them with retries; ``SpoolingSpanProcessor`` is the processor to register.
See docs/export.md.
"""

from otel_gemini.export._accounting import DROP_REASONS, ExportStats
from otel_gemini.export._exporter import LangfuseExporter
from otel_gemini.export._processor import SpoolingSpanProcessor
from otel_gemini.export._retry import RetryPolicy
from otel_gemini.export._settings import LangfuseConfigError
from otel_gemini.export._slots import SpoolBusyError

__all__ = [
    "DROP_REASONS",
    "ExportStats",
    "LangfuseConfigError",
    "LangfuseExporter",
    "RetryPolicy",
    "SpoolBusyError",
    "SpoolingSpanProcessor",
]
