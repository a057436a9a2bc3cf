"""OpenTelemetry instrumentation of the google-genai SDK."""

from otel_gemini.instrumentation._instrumentor import GeminiInstrumentor

__all__ = ["GeminiInstrumentor"]

# The internal interface configure() uses (content capture resolved once; the counters of
# instrumentation errors and the metrics worker's loop health shows). Not in __all__: not
# for users.
from otel_gemini.instrumentation._internal_errors import (
    internal_error_counts as internal_error_counts,
)
from otel_gemini.instrumentation._metric_queue import metrics_loops as metrics_loops
from otel_gemini.instrumentation._settings import InstrumentationSettings as InstrumentationSettings
