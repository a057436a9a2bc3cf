"""otel-gemini: see what Google Gemini calls cost and how they behave, in production.

The main API is re-exported here. Subpackages export their own public names
(``otel_gemini.export``, ``.health``, ``.aggregate``, ``.server``, ``.gateway``,
``.testing``); modules whose names start with ``_`` are private.

The names are loaded on first use, so ``import otel_gemini`` (and the ``otel-gemini``
command line) does not pay for google-genai, the OTel SDK and the exporter until needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from otel_gemini._version import __version__

if TYPE_CHECKING:
    from otel_gemini._configure import Telemetry, configure
    from otel_gemini._trace_attributes import trace_attributes
    from otel_gemini.aggregate import CostStore, CostStoreError
    from otel_gemini.budgets import BudgetExceededError
    from otel_gemini.export import LangfuseConfigError, LangfuseExporter
    from otel_gemini.instrumentation import GeminiInstrumentor
    from otel_gemini.pricing import Cost, PriceTable, PriceTableError, Usage
    from otel_gemini.processing import CostSpanProcessor

# public name -> the module it lives in
_EXPORTS: dict[str, str] = {
    "BudgetExceededError": "otel_gemini.budgets",
    "Cost": "otel_gemini.pricing",
    "CostSpanProcessor": "otel_gemini.processing",
    "CostStore": "otel_gemini.aggregate",
    "CostStoreError": "otel_gemini.aggregate",
    "GeminiInstrumentor": "otel_gemini.instrumentation",
    "LangfuseConfigError": "otel_gemini.export",
    "LangfuseExporter": "otel_gemini.export",
    "PriceTable": "otel_gemini.pricing",
    "PriceTableError": "otel_gemini.pricing",
    "Telemetry": "otel_gemini._configure",
    "Usage": "otel_gemini.pricing",
    "configure": "otel_gemini._configure",
    "trace_attributes": "otel_gemini._trace_attributes",
}

__all__ = [
    "BudgetExceededError",
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_gemini' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
