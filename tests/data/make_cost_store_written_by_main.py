"""Writes a cost store with main's code (schema 1) and its answers, for the upgrade test."""

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode

from otel_gemini import CostSpanProcessor, PriceTable
from otel_gemini.aggregate import CostAnswers, CostStore, parse_cost_query, parse_latency_query

out = Path(sys.argv[1])
db = out / "cost_store_written_by_main.sqlite3"
store = CostStore(db, retention_days=0)
provider = TracerProvider(resource=Resource.create({"service.name": "fixture-app"}))
provider.add_span_processor(CostSpanProcessor(store, PriceTable.default()))
tracer = provider.get_tracer("fixture")
base = int(datetime(2026, 11, 3, 9, 0, tzinfo=timezone.utc).timestamp() * 1e9)
plan = [
    # (day offset, user, model, input, output, latency ms, error)
    (0, "alice", "gemini-2.5-flash", 1000, 200, 800, False),
    (0, "alice", "gemini-2.5-pro", 3000, 500, 2500, False),
    (0, "bob", "gemini-2.5-flash", 120, 40, 300, True),
    (1, "bob", "gemini-2.5-flash-lite", 5000, 1000, 400, False),
    (1, "carol", "no-such-model", 100, 10, 200, False),
    (1, "alice", "gemini-2.0-flash", 700, 70, 650, False),
]
for index, (day, user, model, inp, outp, latency, error) in enumerate(plan):
    start = base + day * 86_400 * 10**9 + index * 60 * 10**9
    span = tracer.start_span(
        f"generate_content {model}",
        start_time=start,
        attributes={
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": inp,
            "gen_ai.usage.output_tokens": outp,
            "user.id": user,
            "session.id": f"s-{user}",
            "langfuse.trace.tags": ("fixture",),
        },
    )
    if error:
        span.set_attribute("error.type", "ServerError")
        span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end(end_time=start + latency * 10**6)
store.shutdown(10_000)
answers = CostAnswers.from_env(db)
now = datetime(2026, 11, 10, tzinfo=timezone.utc)
window = {"from": "2026-11-01", "to": "2026-11-08"}
expected = {}
for by in ("model", "user,day", "day,model", ""):
    expected[f"costs:{by}"] = answers.costs(
        parse_cost_query({**window, "group_by": by}, now)
    ).to_dict()
for by in ("model", "day"):
    expected[f"latency:{by}"] = answers.latency(
        parse_latency_query({**window, "group_by": by}, now)
    ).to_dict()
(out / "cost_store_written_by_main.answers.json").write_text(
    json.dumps(expected, indent=1, sort_keys=True) + "\n"
)
