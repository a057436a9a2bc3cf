"""OpenTelemetry instrumentation of the google-genai SDK."""

from otel_gemini.instrumentation._instrumentor import GeminiInstrumentor

__all__ = ["GeminiInstrumentor"]
