"""Writes a schema-2 cost store with main's code (before ``request_model``), for the budgets'
model-alias upgrade test: run with main's tree first on ``PYTHONPATH``, e.g.
``PYTHONPATH=/path/to/main python make_cost_store_v2_written_by_main.py tests/data``."""

import sys
from datetime import datetime, timezone
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini.aggregate import CostStore

out = Path(sys.argv[1])
db = out / "cost_store_v2_written_by_main.sqlite3"
store = CostStore(db, retention_days=0)
provider = TracerProvider(resource=Resource.create({"service.name": "fixture-app"}))
provider.add_span_processor(CostSpanProcessor(store, PriceTable.default()))
tracer = provider.get_tracer("fixture")
base = int(datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc).timestamp() * 1e9)
plan = [
    # (requested model, the response's modelVersion or None)
    ("gemini-flash-latest", "gemini-2.5-flash-001"),
    ("gemini-flash-latest", "gemini-2.5-flash-001"),
    ("gemini-2.5-flash", "gemini-2.5-flash"),
    ("gemini-2.5-pro", None),
]
for index, (requested, served) in enumerate(plan):
    start = base + index * 60 * 10**9
    attributes = {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": requested,
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.reasoning.output_tokens": 100,
        "user.id": "ana",
    }
    if served is not None:
        attributes["gen_ai.response.model"] = served
    span = tracer.start_span(
        f"generate_content {requested}", start_time=start, attributes=attributes
    )
    span.end(end_time=start + 500 * 10**6)
provider.shutdown()
store.shutdown(5000)
