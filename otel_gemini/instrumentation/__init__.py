"""OpenTelemetry instrumentation of the google-genai SDK."""

from otel_gemini.instrumentation._instrumentor import GeminiInstrumentor
from otel_gemini.instrumentation._metric_queue import metrics_loops

__all__ = ["GeminiInstrumentor", "metrics_loops"]
