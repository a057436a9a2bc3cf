"""otel-gemini: see what Google Gemini calls cost and how they behave, in production.

The main API is re-exported here. Subpackages export their own public names
(``otel_gemini.export``, ``.health``, ``.aggregate``, ``.server``, ``.gateway``,
``.testing``); modules whose names start with ``_`` are private.
"""

from otel_gemini._configure import Telemetry, configure
from otel_gemini._trace_attributes import trace_attributes
from otel_gemini._version import __version__
from otel_gemini.aggregate import CostStore, CostStoreError
from otel_gemini.export import LangfuseConfigError, LangfuseExporter
from otel_gemini.instrumentation import GeminiInstrumentor
from otel_gemini.pricing import Cost, PriceTable, PriceTableError, Usage
from otel_gemini.processing import CostSpanProcessor

__all__ = [
    "Cost",
    "CostSpanProcessor",
    "CostStore",
    "CostStoreError",
    "GeminiInstrumentor",
    "LangfuseConfigError",
    "LangfuseExporter",
    "PriceTable",
    "PriceTableError",
    "Telemetry",
    "Usage",
    "__version__",
    "configure",
    "trace_attributes",
]
