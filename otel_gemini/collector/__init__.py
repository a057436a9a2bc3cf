"""OpenTelemetry Collector support: the OTTL cost statements generated from the price table.

``otel-gemini collector-config ottl`` writes them as a Collector config fragment; the
Collector configs themselves live in the repository's ``collector-config/`` directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_gemini._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_gemini.collector._ottl import CostStatements, cost_statements

__all__ = ["CostStatements", "cost_statements"]


# Loaded on first use: the CLI imports this package's command module to build its
# parser, and should not pay for the implementation then.
__getattr__ = lazy_exports(__name__, "otel_gemini.collector._ottl", __all__, globals())
