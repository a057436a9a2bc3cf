"""OpenTelemetry Collector support: the OTTL cost statements generated from the price table.

``otel-gemini collector-config ottl`` writes them as a Collector config fragment; the
Collector configs themselves live in the repository's ``collector-config/`` directory.
"""

from otel_gemini.collector._ottl import CostStatements, cost_statements

__all__ = ["CostStatements", "cost_statements"]
