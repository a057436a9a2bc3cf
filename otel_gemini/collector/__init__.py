"""OpenTelemetry Collector support: the OTTL cost statements generated from the price table.

``otel-gemini collector-config ottl`` writes them as a Collector config fragment; the
Collector configs themselves live in the repository's ``collector-config/`` directory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_gemini.collector._ottl import CostStatements, cost_statements

__all__ = ["CostStatements", "cost_statements"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the CLI imports this package's command module to build its
    # parser, and should not pay for the implementation then.
    if name not in __all__:
        raise AttributeError(f"module 'otel_gemini.collector' has no attribute {name!r}")
    value = getattr(importlib.import_module("otel_gemini.collector._ottl"), name)
    globals()[name] = value
    return value
