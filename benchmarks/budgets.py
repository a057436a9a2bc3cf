"""Budgets: what enforcement adds to the caller's thread, and how many priced spans the
evaluator's worker keeps up with, against baselines measured in the same run.

1. Caller's thread, per call (``time.thread_time``, best of several interleaved rounds):
   the budget check a billed request makes (``check_request``) inside a
   ``trace_attributes(user_id, session_id, tags)`` block, versus calling an empty function
   of the same signature (the floor of any hook). Two cases: nothing exhausted (the usual
   state: one truth test), and 10,000 other users exhausted (one dictionary lookup per scope
   kind the request has: total, service, model, user, session, each tag). Target: <= 2 us.
2. A whole instrumented ``generate_content`` (real client, in-process fake Gemini) with
   enforcement on and 10,000 other users exhausted, versus the same call with budgets off:
   the function calls added per call, counted under cProfile (deterministic; the call
   itself takes hundreds of microseconds, so a time difference would be noise).
3. The evaluator's worker: the rows of real committed cost-store batches (1,000 rows each,
   500 users, four rules: per-user day, per-model day, total month, a tag) replayed into a
   new evaluator, until ``force_flush`` returns: priced spans per second, as a ratio of the
   10,000/s target, and of the store writer's own rows/s for the same spans (the rate at
   which rows can reach the evaluator at all).

    python benchmarks/budgets.py [calls-per-round]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, trace_attributes
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate import CommittedRows, CostStore
from otel_gemini.budgets import BudgetEvaluator, BudgetRules, Exhaustion, check_request
from otel_gemini.budgets._guard import publish
from otel_gemini.testing import FakeGemini

MODEL = "gemini-2.5-flash"
TARGET_US = 2.0
TARGET_SPANS_PER_SECOND = 10_000


def _no_check(model: object) -> None:
    return None


def _per_call_us(check: Callable[[object], None], calls: int) -> float:
    with trace_attributes(user_id="u-open", session_id="s-1", tags=["voice", "beta"]):
        started = time.thread_time()
        for _ in range(calls):
            check(MODEL)
        return (time.thread_time() - started) / calls * 1e6


def _best_pair(
    baseline: Callable[[], float], measured: Callable[[], float], rounds: int
) -> tuple[float, float]:
    pairs = [(baseline(), measured()) for _ in range(rounds)]
    return min(p[0] for p in pairs), min(p[1] for p in pairs)


def _exhaust_other_users(count: int) -> None:
    end = datetime.now(timezone.utc) + timedelta(days=1)
    publish(
        {
            ("user", f"u-{index}"): Exhaustion("cap", "user", f"u-{index}", end, "1", "1")
            for index in range(count)
        },
        "bench-app",
    )


def caller_thread(calls: int, rounds: int) -> None:
    print(f"1. caller's thread, per call (best of {rounds} rounds of {calls:,} calls)")
    publish({})
    floor, empty = _best_pair(
        lambda: _per_call_us(_no_check, calls), lambda: _per_call_us(check_request, calls), rounds
    )
    print(
        f"   nothing exhausted:        check {empty:.3f} us, empty hook {floor:.3f} us, "
        f"added {empty - floor:.3f} us (ratio {empty / floor:.2f}); target <= {TARGET_US} us"
    )
    _exhaust_other_users(10_000)
    floor, busy = _best_pair(
        lambda: _per_call_us(_no_check, calls), lambda: _per_call_us(check_request, calls), rounds
    )
    print(
        f"   10,000 users exhausted:   check {busy:.3f} us, empty hook {floor:.3f} us, "
        f"added {busy - floor:.3f} us (ratio {busy / floor:.2f}); target <= {TARGET_US} us"
    )
    publish({})


def _function_calls_per_call(call: Callable[[], object], calls: int) -> float:
    for _ in range(20):
        call()
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        call()
    profile.disable()
    return pstats.Stats(profile).total_calls / calls  # type: ignore[attr-defined,no-any-return]


def whole_call(calls: int) -> None:
    fake = FakeGemini()
    client = fake.inprocess_client()
    provider = TracerProvider()
    GeminiInstrumentor().instrument(tracer_provider=provider)

    def call() -> None:
        with trace_attributes(user_id="u-open"):
            client.models.generate_content(model=MODEL, contents="hello")

    try:
        publish({})
        off = _function_calls_per_call(call, calls)
        _exhaust_other_users(10_000)
        on = _function_calls_per_call(call, calls)
    finally:
        publish({})
        GeminiInstrumentor().uninstrument()
        provider.shutdown()
    print(
        f"2. whole instrumented generate_content (in-process fake, {calls} calls), Python and "
        f"C function calls per call under cProfile (deterministic; a time difference would be "
        f"lost in the call's own noise): budgets off {off:,.1f}, enforcement on with 10,000 "
        f"other users exhausted {on:,.1f}, added {on - off:+.1f}"
    )


RULES = """
[settings]
interval_seconds = 3600
[[budget]]
name = "per-user-day"
scope = "user"
limit_usd = 5
[[budget]]
name = "per-model-day"
scope = "model"
limit_usd = 1000
[[budget]]
name = "team-month"
limit_usd = 10000
period = "month"
[[budget]]
name = "voice-tag"
scope = "tag"
tag = "voice"
limit_usd = 500
"""


def _write_spans(store: CostStore, spans: int) -> float:
    provider = TracerProvider(resource=Resource.create({"service.name": "bench-app"}))
    provider.add_span_processor(CostSpanProcessor(store))
    tracer = provider.get_tracer("bench")
    now_ns = time.time_ns()
    started = time.perf_counter()
    for index in range(spans):
        span = tracer.start_span(f"generate_content {MODEL}", start_time=now_ns - index * 1000)
        span.set_attributes(
            {
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                attrs.GEN_AI_REQUEST_MODEL: MODEL,
                attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
                attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000 + index % 100,
                attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
                attrs.USER_ID: f"user-{index % 500}",
                attrs.LANGFUSE_TRACE_TAGS: ("voice",) if index % 2 else ("chat",),
            }
        )
        span.end(end_time=now_ns - index * 1000 + 10**8)
    assert store.force_flush(300_000)
    return spans / (time.perf_counter() - started)


def evaluator_throughput(spans: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "costs.sqlite3"
        # Room for every span (count and bytes): the evaluator is measured on all of them.
        store = CostStore(path, retention_days=0, max_queue=spans, max_queue_bytes=spans * 16_384)
        committed: list[CommittedRows] = []
        store.add_commit_listener(committed.append)
        store_rate = _write_spans(store, spans)
        store.shutdown(10_000)
        # Batches as the evaluator gets them (the writer's batches can be larger): 1,000 rows.
        rows = [row for batch in committed for row in batch.rows]
        last = committed[-1].last_rowid
        batches = [
            CommittedRows(rows[index : index + 1000], last) for index in range(0, len(rows), 1000)
        ]
        rules = BudgetRules.parse(RULES)
        rates = []
        for _ in range(3):
            evaluator = BudgetEvaluator(rules, path, enforce=False)
            assert evaluator.force_flush(60)  # its first read of the store
            # Added as if they came after that read (the last batch's rowid is ahead of it).
            batches = [CommittedRows(b.rows, last + 1) for b in batches]
            started = time.perf_counter()
            for batch in batches:
                evaluator.on_committed(batch)
            assert evaluator.force_flush(120)
            rates.append(len(rows) / (time.perf_counter() - started))
            stats: dict[str, Any] = evaluator.stats()
            evaluator.shutdown(10)
            assert stats["totals_readable"], stats
    best = max(rates)
    print(
        f"3. evaluator worker: {best:,.0f} priced spans/s (best of 3; {len(rows):,} rows, "
        f"4 rules, 500 users): {best / TARGET_SPANS_PER_SECOND:.1f} x the "
        f"{TARGET_SPANS_PER_SECOND:,}/s target, {best / store_rate:.1f} x the store writer's "
        f"{store_rate:,.0f} rows/s for the same spans"
    )


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    caller_thread(calls, rounds=5)
    whole_call(200)
    evaluator_throughput(20_000)


if __name__ == "__main__":
    main()
