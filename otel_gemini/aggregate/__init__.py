"""Cost and latency answers: the local ``CostStore`` and queries over it or Langfuse.

``CostStore`` is a span processor keeping one SQLite row per GenAI generation;
``LocalCostSource`` and ``LangfuseMetricsSource`` answer "what did we spend, per user, per
day, per model?" and "how slow is it at p50 / p95 / p99?"; ``CostAnswers`` picks the source
and falls back to the local store when Langfuse cannot answer. See docs/api.md.
"""

from otel_gemini.aggregate._answers import CostAnswers, SourceUnavailable
from otel_gemini.aggregate._command import table as text_table
from otel_gemini.aggregate._langfuse import LangfuseMetricsSource, LangfuseUnavailable
from otel_gemini.aggregate._local import LocalCostSource
from otel_gemini.aggregate._money import femto_decimal, joined, split_sum_sql, to_femto, usd_text
from otel_gemini.aggregate._query import (
    CostQuery,
    Filters,
    LatencyQuery,
    QueryError,
    TimeWindow,
    parse_cost_query,
    parse_latency_query,
)
from otel_gemini.aggregate._reports import (
    CostGroup,
    CostReport,
    LatencyGroup,
    LatencyReport,
    Origin,
    Percentiles,
)
from otel_gemini.aggregate._rows import GenerationRow
from otel_gemini.aggregate._schema import (
    ENV_COST_DB,
    CostStoreError,
    default_cost_db,
    open_for_reading,
)
from otel_gemini.aggregate._store import DROP_REASONS, CommittedRows, CostStore

__all__ = [
    "DROP_REASONS",
    "ENV_COST_DB",
    "CommittedRows",
    "CostAnswers",
    "CostGroup",
    "CostQuery",
    "CostReport",
    "CostStore",
    "CostStoreError",
    "Filters",
    "GenerationRow",
    "LangfuseMetricsSource",
    "LangfuseUnavailable",
    "LatencyGroup",
    "LatencyQuery",
    "LatencyReport",
    "LocalCostSource",
    "Origin",
    "Percentiles",
    "QueryError",
    "SourceUnavailable",
    "TimeWindow",
    "default_cost_db",
    "femto_decimal",
    "joined",
    "open_for_reading",
    "parse_cost_query",
    "parse_latency_query",
    "split_sum_sql",
    "text_table",
    "to_femto",
    "usd_text",
]
