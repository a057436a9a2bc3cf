"""Cost and latency answers: the local ``CostStore`` and queries over it or Langfuse.

``CostStore`` is a span processor keeping one SQLite row per GenAI generation;
``LocalCostSource`` and ``LangfuseMetricsSource`` answer "what did we spend, per user, per
day, per model?" and "how slow is it at p50 / p95 / p99?"; ``CostAnswers`` picks the source
and falls back to the local store when Langfuse cannot answer. See docs/api.md.
"""

from otel_gemini.aggregate._answers import CostAnswers, SourceUnavailable
from otel_gemini.aggregate._langfuse import LangfuseMetricsSource, LangfuseUnavailable
from otel_gemini.aggregate._local import LocalCostSource
from otel_gemini.aggregate._query import (
    CostQuery,
    LatencyQuery,
    QueryError,
    parse_cost_query,
    parse_latency_query,
)
from otel_gemini.aggregate._reports import (
    CostReport,
    LatencyReport,
)
from otel_gemini.aggregate._schema import CostStoreError, default_cost_db
from otel_gemini.aggregate._store import CostStore

# The answers API for embedding (docs/api.md) and the cost store; the report's parts
# (groups, origin, percentiles, filters, time window) are reached through it, and stay
# importable here for tests without being promised to users.
__all__ = [
    "CostAnswers",
    "CostQuery",
    "CostReport",
    "CostStore",
    "CostStoreError",
    "LangfuseMetricsSource",
    "LangfuseUnavailable",
    "LatencyQuery",
    "LatencyReport",
    "LocalCostSource",
    "QueryError",
    "SourceUnavailable",
    "default_cost_db",
    "parse_cost_query",
    "parse_latency_query",
]

# The internal interface other otel_gemini modules use (the HTTP API's parameters, the demo's
# store and report, the budgets' ledger). Not in __all__: not for users.
from otel_gemini.aggregate._command import print_costs as print_costs
from otel_gemini.aggregate._command import print_latency as print_latency
from otel_gemini.aggregate._drops import dropped_between as dropped_between
from otel_gemini.aggregate._drops import store_drops as store_drops
from otel_gemini.aggregate._money import joined as joined
from otel_gemini.aggregate._money import split_sum_sql as split_sum_sql
from otel_gemini.aggregate._query import FILTER_KEYS as FILTER_KEYS
from otel_gemini.aggregate._query import Filters as Filters
from otel_gemini.aggregate._query import TimeWindow as TimeWindow
from otel_gemini.aggregate._query import parse_source as parse_source
from otel_gemini.aggregate._query import unix_ns as unix_ns
from otel_gemini.aggregate._reports import CostGroup as CostGroup
from otel_gemini.aggregate._reports import LatencyGroup as LatencyGroup
from otel_gemini.aggregate._reports import Origin as Origin
from otel_gemini.aggregate._reports import Percentiles as Percentiles
from otel_gemini.aggregate._rows import GenerationRow as GenerationRow
from otel_gemini.aggregate._schema import check_writable as check_writable
from otel_gemini.aggregate._schema import open_for_reading as open_for_reading
from otel_gemini.aggregate._schema import open_for_writing as open_for_writing
from otel_gemini.aggregate._settings import ENV_COST_DB as ENV_COST_DB
from otel_gemini.aggregate._settings import CostStoreConfigError as CostStoreConfigError
from otel_gemini.aggregate._settings import CostStoreOptions as CostStoreOptions
from otel_gemini.aggregate._settings import CostStoreSettings as CostStoreSettings
from otel_gemini.aggregate._settings import path_from as path_from
from otel_gemini.aggregate._store import DROP_REASONS as DROP_REASONS
from otel_gemini.aggregate._store import CommittedRows as CommittedRows
from otel_gemini.aggregate._window_spend import WindowSpend as WindowSpend
from otel_gemini.aggregate._window_spend import window_spend as window_spend
