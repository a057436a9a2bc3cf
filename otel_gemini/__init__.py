"""otel-gemini: see what Google Gemini calls cost and how they behave, in production.

The public API is re-exported here; everything else in the package is private.
"""

from otel_gemini._configure import Telemetry, configure
from otel_gemini._trace_attributes import trace_attributes
from otel_gemini._version import __version__
from otel_gemini.export import LangfuseExporter
from otel_gemini.instrumentation import GeminiInstrumentor
from otel_gemini.pricing import Cost, PriceTable, Usage
from otel_gemini.processing import CostSpanProcessor

__all__ = [
    "Cost",
    "CostSpanProcessor",
    "GeminiInstrumentor",
    "LangfuseExporter",
    "PriceTable",
    "Telemetry",
    "Usage",
    "__version__",
    "configure",
    "trace_attributes",
]
