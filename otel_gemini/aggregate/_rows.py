"""A finished span → one cost-store row, or nothing if it is not a GenAI generation.

Runs on the store's writer thread, never the application's: reading a priced span's
attributes is what makes ``CostSpanProcessor`` work out its price.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_gemini import _attributes as attrs
from otel_gemini._limits import cut
from otel_gemini._money import femto_from_text, femto_text
from otel_gemini._span_usage import MODEL_KEYS, PROVIDER_KEYS, first_text, is_billed

# Operations that bill (Langfuse makes them generations or embeddings). A span carrying one
# is stored even without usage, so that failed requests count in error rates.
GENERATION_OPERATIONS: Final = frozenset(
    (
        attrs.OP_GENERATE_CONTENT,
        attrs.OP_EMBEDDINGS,
        "generate_images",
        "generate_videos",
        "chat",
        "completion",
        "text_completion",
        "generate",
    )
)

COLUMNS: Final = (
    "trace_id",
    "span_id",
    "start_ns",
    "end_ns",
    "user_id",
    "session_id",
    "model",
    "provider",
    "operation",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "usage_details",
    "cost_femto",
    "input_cost_femto",
    "output_cost_femto",
    "cost_details",
    "cost_status",
    "prices_version",
    "latency_ms",
    "ttft_ms",
    "is_error",
    "error_type",
)


class GenerationRow(NamedTuple):
    """One stored generation (the columns of the ``generations`` table, in order)."""

    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    user_id: str | None
    session_id: str | None
    model: str | None
    provider: str | None
    operation: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    usage_details: str | None
    """JSON: units by bucket, as on ``langfuse.observation.usage_details``."""
    cost_femto: int | None
    """Total cost in 1e-15 USD; ``None`` when unknown (never a false 0)."""
    input_cost_femto: int | None
    output_cost_femto: int | None
    cost_details: str | None
    """JSON: USD by bucket as exact decimal strings, with ``total``."""
    cost_status: str | None
    """``priced``, ``unknown_model``, ``implausible_usage``, ``no_usage``, or ``None`` (no
    usage reported)."""
    prices_version: str | None
    latency_ms: float
    ttft_ms: float | None
    is_error: int
    error_type: str | None


def _count(value: Any) -> int:
    kind = type(value)
    if kind is int:
        return int(value)
    if kind is float and math.isfinite(value):
        return int(value)
    return 0


# SQLite integers are signed 64-bit: one larger value makes the whole batch's insert fail
# (OverflowError), and the writer would retry that batch for ever. A row never holds one.
_SQL_INT_MAX: Final = 2**63 - 1


def _storable(*values: int | None) -> bool:
    return all(value is None or 0 <= value <= _SQL_INT_MAX for value in values)


def is_generation(attributes: Mapping[str, Any]) -> bool:
    """Whether a span bills: priced by the cost processor, or a billing operation that
    reported no usage (a failed request). Grouping spans never are, nor covered ones (another
    span of the same request was priced and stored)."""
    if not is_billed(attributes):
        return False
    status = attributes.get(attrs.COST_STATUS)
    if status is not None:
        return bool(status != attrs.COST_STATUS_COVERED)
    return attributes.get(attrs.GEN_AI_OPERATION_NAME) in GENERATION_OPERATIONS


def _plain(attributes: Any) -> Mapping[str, Any]:
    # One plain dict up front: a priced span's attributes are a lazy mapping behind a
    # proxy, where every lookup costs three calls. (mappingproxy.copy copies the mapping.)
    if not attributes:
        return {}
    copy = getattr(attributes, "copy", None)
    plain = copy() if copy is not None else None
    return plain if isinstance(plain, dict) else dict(attributes)


def _json_object(text: Any, **options: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        document = json.loads(text, **options)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _costs(
    attributes: Mapping[str, Any],
) -> tuple[int | None, int | None, int | None, str | None]:
    # Number literals stay text (no float): each becomes femto-dollars by integer arithmetic.
    details = _json_object(
        attributes.get(attrs.LANGFUSE_COST_DETAILS), parse_float=str, parse_int=str
    )
    if details is not None and "total" in details:
        femto: dict[str, int] = {}
        for key, value in details.items():
            amount = femto_from_text(value) if isinstance(value, str) else None
            if amount is None:
                break
            femto[key] = amount
        else:
            # Langfuse's inputCost / outputCost: the buckets whose name has the word.
            input_cost = sum(amount for key, amount in femto.items() if "input" in key)
            output_cost = sum(amount for key, amount in femto.items() if "output" in key)
            # The breakdown keeps the span's own decimal text, as strings (exact, no float).
            return femto["total"], input_cost, output_cost, json.dumps(details)
    cost = attributes.get(attrs.GEN_AI_USAGE_COST)
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost):
        total = femto_from_text(repr(float(cost)))
        if total is not None:
            return total, None, None, json.dumps({"total": femto_text(total)})
    return None, None, None, None


def _tokens(attributes: Mapping[str, Any]) -> tuple[int, int, int, str | None]:
    text = attributes.get(attrs.LANGFUSE_USAGE_DETAILS)
    usage = _json_object(text)
    if usage is not None and all(type(value) is int for value in usage.values()):
        input_tokens = sum(value for key, value in usage.items() if "input" in key)
        output_tokens = sum(value for key, value in usage.items() if "output" in key)
        total = usage.get("total")
        total_tokens = total if isinstance(total, int) else input_tokens + output_tokens
        return input_tokens, output_tokens, total_tokens, str(text)
    input_tokens = _count(
        attributes.get(
            attrs.GEN_AI_USAGE_INPUT_TOKENS, attributes.get(attrs.LLM_TOKEN_COUNT_PROMPT)
        )
    )
    output_tokens = _count(
        attributes.get(
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS, attributes.get(attrs.LLM_TOKEN_COUNT_COMPLETION)
        )
    )
    return input_tokens, output_tokens, input_tokens + output_tokens, None


def _ttft_ms(attributes: Mapping[str, Any], start_ns: int) -> float | None:
    """Time to first token: the stream's measured first chunk, else Langfuse's own
    definition (``completion_start_time`` minus the span's start)."""
    seconds = attributes.get(attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK)
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
        return float(seconds) * 1000.0
    started = attributes.get(attrs.LANGFUSE_COMPLETION_START_TIME)
    if isinstance(started, str) and started:
        try:
            moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        delta_ms = (moment.timestamp() * 1e9 - start_ns) / 1e6
        return delta_ms if delta_ms >= 0 else None
    return None


def _bounded(text: str | None) -> str | None:
    return cut(text) if text is not None else None


def generation_row(span: ReadableSpan) -> GenerationRow | None:
    """The row for ``span``, or ``None`` when it is not a generation (or not finished)."""
    context = span.context
    start_ns, end_ns = span.start_time, span.end_time
    if context is None or start_ns is None or end_ns is None:
        return None
    attributes = _plain(span.attributes)
    if not is_generation(attributes):
        return None
    if not _storable(start_ns, end_ns):
        return None  # a peer's time past 2262: not a generation we can place in any window
    cost_femto, input_cost, output_cost, cost_details = _costs(attributes)
    if not _storable(cost_femto, input_cost, output_cost):
        # A provided cost that is negative or over $9,223 (2**63 femto-dollars) for one
        # request is no cost we can believe (nor store): unpriced.
        cost_femto = input_cost = output_cost = None
        cost_details = None
    status = attributes.get(attrs.COST_STATUS)
    if cost_femto is None and status == attrs.COST_STATUS_NO_USAGE:
        cost_femto = input_cost = output_cost = 0  # nothing billable: a true $0
    input_tokens, output_tokens, total_tokens, usage_details = _tokens(attributes)
    if not _storable(input_tokens, output_tokens, total_tokens):
        input_tokens = output_tokens = total_tokens = 0  # counts as sent stay on the span
        usage_details = None
    prices_version = attributes.get(attrs.PRICES_VERSION)
    is_error = span.status.status_code is StatusCode.ERROR
    error_type = attributes.get(attrs.ERROR_TYPE)
    operation = attributes.get(attrs.GEN_AI_OPERATION_NAME)
    return GenerationRow(
        trace_id=format(context.trace_id, "032x"),
        span_id=format(context.span_id, "016x"),
        start_ns=start_ns,
        end_ns=end_ns,
        # Names are cut to MAX_NAME_CHARS: a peer's 7 MiB model name is not kept 7 MiB a row.
        user_id=_bounded(first_text(attributes, attrs.USER_ID_KEYS)),
        session_id=_bounded(first_text(attributes, attrs.SESSION_ID_KEYS)),
        model=_bounded(first_text(attributes, MODEL_KEYS)),
        provider=_bounded(first_text(attributes, PROVIDER_KEYS)),
        operation=_bounded(operation if isinstance(operation, str) else None),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        usage_details=usage_details,
        cost_femto=cost_femto,
        input_cost_femto=input_cost,
        output_cost_femto=output_cost,
        cost_details=cost_details,
        cost_status=status if isinstance(status, str) else None,
        prices_version=prices_version if isinstance(prices_version, str) else None,
        latency_ms=max(0, end_ns - start_ns) / 1e6,
        ttft_ms=_ttft_ms(attributes, start_ns),
        is_error=1 if is_error else 0,
        error_type=_bounded(
            str(error_type) if error_type is not None else ("error" if is_error else None)
        ),
    )
