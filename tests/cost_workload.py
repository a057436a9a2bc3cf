"""A known set of Gemini generations for the cost and latency API tests, and the expected
answers worked out here, independently of otel_gemini's query code."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Status, StatusCode

from otel_gemini import CostSpanProcessor
from otel_gemini import _attributes as attrs

# USD per token (the shipped table's text prices, paid tier, from 2025-11-01).
PRICES = {
    "gemini-2.5-flash": (Decimal("0.30") / 10**6, Decimal("2.50") / 10**6),
    "gemini-2.5-pro": (Decimal("1.25") / 10**6, Decimal("10.00") / 10**6),
}


@dataclass(frozen=True)
class Call:
    user: str | None
    session: str | None
    model: str
    start: str  # ISO, UTC
    latency_ms: int
    input_tokens: int
    output_tokens: int
    ttft_ms: int | None = None
    error: bool = False

    @property
    def start_ns(self) -> int:
        moment = datetime.fromisoformat(self.start.replace("Z", "+00:00"))
        return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000

    @property
    def cost(self) -> Decimal:
        if self.error:
            return Decimal(0)
        input_price, output_price = PRICES[self.model]
        return self.input_tokens * input_price + self.output_tokens * output_price

    def day(self, zone: str) -> str:
        moment = datetime.fromtimestamp(self.start_ns / 1e9, tz=timezone.utc)
        return moment.astimezone(ZoneInfo(zone)).date().isoformat()

    def key(self, group_by: Sequence[str], zone: str = "UTC") -> tuple[str | None, ...]:
        values = {
            "user": self.user,
            "session": self.session,
            "model": self.model,
            "provider": "gcp.gemini",
        }
        return tuple(self.day(zone) if key == "day" else values[key] for key in group_by)


def _latencies(count: int, base: int, step: int) -> list[int]:
    # Spread, not sorted by time: percentiles must not depend on insertion order.
    return [base + ((index * 3) % count) * step for index in range(count)]


def _calls() -> list[Call]:
    calls: list[Call] = []
    flash = _latencies(20, 300, 37)
    for index, latency in enumerate(flash):
        user = ("alice", "bob", "carol")[index % 3]
        # Four days in November, spans near UTC midnight so zones move them across days.
        day = 20 + index % 4
        hour = (23, 0, 12, 5)[index % 4]
        calls.append(
            Call(
                user=user,
                session=f"{user}-s{index % 2}",
                model="gemini-2.5-flash",
                start=f"2026-11-{day:02d}T{hour:02d}:{index:02d}:00Z",
                latency_ms=latency,
                input_tokens=1000 + 10 * index,
                output_tokens=100 + index,
                ttft_ms=latency // 3 if index % 2 == 0 else None,
            )
        )
    for index, latency in enumerate(_latencies(7, 900, 130)):
        calls.append(
            Call(
                user=("alice", "dave")[index % 2],
                session=None,
                model="gemini-2.5-pro",
                start=f"2026-11-{21 + index % 2:02d}T{(23 + index) % 24:02d}:30:00Z",
                latency_ms=latency,
                input_tokens=2000 + index,
                output_tokens=300 + 3 * index,
                ttft_ms=latency // 4,
            )
        )
    # Failures: no usage, status ERROR.
    calls.append(
        Call("bob", "bob-s0", "gemini-2.5-flash", "2026-11-21T12:40:00Z", 50, 0, 0, error=True)
    )
    calls.append(Call(None, None, "gemini-2.5-pro", "2026-11-22T12:41:00Z", 60, 0, 0, error=True))
    return calls


CALLS: list[Call] = _calls()
WINDOW = {"from": "2026-11-19T00:00:00Z", "to": "2026-11-25T00:00:00Z"}


def record(calls: Iterable[Call], downstream: SpanProcessor) -> None:
    """Makes one generation span per call, priced by the real CostSpanProcessor."""
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(downstream))
    tracer = provider.get_tracer("cost-workload")
    for call in calls:
        attributes: dict[str, Any] = {
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
            attrs.GEN_AI_REQUEST_MODEL: call.model,
            attrs.GEN_AI_RESPONSE_MODEL: call.model,
            attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
        }
        if call.user is not None:
            attributes[attrs.USER_ID] = call.user
        if call.session is not None:
            attributes[attrs.SESSION_ID] = call.session
        if not call.error:
            attributes[attrs.GEN_AI_USAGE_INPUT_TOKENS] = call.input_tokens
            attributes[attrs.GEN_AI_USAGE_OUTPUT_TOKENS] = call.output_tokens
        if call.ttft_ms is not None:
            first = call.start_ns + call.ttft_ms * 10**6
            attributes[attrs.LANGFUSE_COMPLETION_START_TIME] = datetime.fromtimestamp(
                first / 1e9, tz=timezone.utc
            ).isoformat()
        span = tracer.start_span(
            f"generate_content {call.model}", start_time=call.start_ns, attributes=attributes
        )
        if call.error:
            span.set_attribute(attrs.ERROR_TYPE, "503")
            span.set_status(Status(StatusCode.ERROR, "Service Unavailable"))
        span.end(end_time=call.start_ns + call.latency_ms * 10**6)
    provider.force_flush()


def money(amount: Decimal) -> str:
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def expected_costs(
    group_by: Sequence[str],
    zone: str = "UTC",
    keep: Callable[[Call], bool] = lambda call: True,
) -> list[dict[str, Any]]:
    """The groups the costs endpoint should answer, sorted by key (None first)."""
    groups: dict[tuple[str | None, ...], list[Call]] = defaultdict(list)
    for call in CALLS:
        if keep(call):
            groups[call.key(group_by, zone)].append(call)
    answer = []
    for key in sorted(groups, key=lambda k: tuple((v is not None, v or "") for v in k)):
        calls = groups[key]
        input_cost = sum((c.input_tokens * PRICES[c.model][0] for c in calls), Decimal(0))
        output_cost = sum((c.output_tokens * PRICES[c.model][1] for c in calls), Decimal(0))
        answer.append(
            {
                **dict(zip(group_by, key, strict=True)),
                "cost": money(sum((c.cost for c in calls), Decimal(0))),
                "input_cost": money(input_cost),
                "output_cost": money(output_cost),
                "input_tokens": sum(c.input_tokens for c in calls),
                "output_tokens": sum(c.output_tokens for c in calls),
                "total_tokens": sum(c.input_tokens + c.output_tokens for c in calls),
                "requests": len(calls),
                "unpriced_requests": 0,
                "errors": sum(c.error for c in calls),
            }
        )
    return answer


def inclusive_percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / p99 by statistics.quantiles' inclusive method (numpy's linear)."""
    if len(values) == 1:
        return {"p50": values[0], "p95": values[0], "p99": values[0]}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
