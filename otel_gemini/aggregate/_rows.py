"""A finished span → one cost-store row, or nothing if it is not a GenAI generation.

The application thread only takes a :data:`SpanRecord` (ids, times, the attribute mapping
and the resource: no span); the row is built from it on the store's writer thread, where
reading a priced span's attributes is what makes ``CostSpanProcessor`` work out its price.
The cost processor's own figures (:func:`~otel_gemini.processing.priced_figures`) are taken
as computed; a span priced elsewhere (the gateway's input, another pipeline) is read from
its attributes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_gemini import _attributes as attrs
from otel_gemini._limits import cut
from otel_gemini._money import femto_from_text, femto_text
from otel_gemini._span_usage import MODEL_KEYS, PROVIDER_KEYS, first_text, is_billed
from otel_gemini.processing import PricedFigures, priced_figures, unread_attributes

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
    "service_name",
    "tags",
    "request_model",
)

SpanRecord = tuple[int, int, int, int, bool, Mapping[str, Any], Resource | None]
"""What the store keeps of a finished span until its writer builds the row: trace id, span
id, start and end (ns), whether its status is ERROR, its attribute mapping (priced lazily)
and its resource (shared by all spans of a provider)."""

_SERVICE_NAME: Final = "service.name"


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
    service_name: str | None
    """The resource's ``service.name``."""
    tags: str | None
    """JSON array of the span's trace tags (``trace_attributes(tags=...)``), sorted."""
    request_model: str | None = None
    """The model the request named (``gen_ai.request.model``) when it is not :attr:`model`
    as written, e.g. an alias (``gemini-flash-latest``) answered by a model version; ``None``
    when they are the same (and in rows written before the column was added). Budgets key
    a ``model`` scope on both."""


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
    if None in values:  # an unknown cost
        return all(value is None or 0 <= value <= _SQL_INT_MAX for value in values)
    # The usual case, all known: C-level passes (this runs three times a row).
    known = cast("tuple[int, ...]", values)
    return min(known) >= 0 and max(known) <= _SQL_INT_MAX


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
    resolved = getattr(attributes, "resolved", None)  # CostAttributes: its own priced dict
    if resolved is not None:
        mapping = resolved()
        if isinstance(mapping, dict):
            return mapping
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
    text = attributes.get(attrs.LANGFUSE_COST_DETAILS)
    details = _json_object(text, parse_float=str, parse_int=str)
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
            # The breakdown is the span's own text (exact decimals, no float).
            return femto["total"], input_cost, output_cost, str(text)
    cost = attributes.get(attrs.GEN_AI_USAGE_COST)
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and math.isfinite(cost):
        total = femto_from_text(repr(float(cost)))
        if total is not None:
            return total, None, None, f'{{"total":{femto_text(total)}}}'
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


# A process uses a few tag sets over and over: each one's JSON is made once (a bounded
# memo: cleared when full, so a flood of distinct tag sets costs memory no longer). Only
# tuples of strings are memoised: (1,) and (1.0,) are equal keys but different tags.
_TAGS_JSON: dict[tuple[str, ...], str] = {}
_MAX_TAG_SETS: Final = 1024
_STR_ONLY: Final = {str}


def _tags_json(value: tuple[Any, ...] | list[Any]) -> str:
    return json.dumps(sorted({cut(str(tag)) for tag in value}))


def _tags(value: Any) -> str | None:
    if isinstance(value, str):
        value = (value,)
    elif not isinstance(value, (tuple, list)) or not value:
        return None
    if type(value) is not tuple or set(map(type, value)) != _STR_ONLY:
        return _tags_json(value)
    text = _TAGS_JSON.get(value)
    if text is None:
        text = _tags_json(value)
        if len(_TAGS_JSON) >= _MAX_TAG_SETS:
            _TAGS_JSON.clear()
        _TAGS_JSON[value] = text
    return text


def span_record(span: ReadableSpan) -> SpanRecord | None:
    """What the store keeps of ``span`` (on the application thread: no attribute is read,
    so nothing is priced here); ``None`` when it is not finished or has no context."""
    context = span.context
    start_ns, end_ns = span.start_time, span.end_time
    if context is None or start_ns is None or end_ns is None:
        return None
    return (
        context.trace_id,
        context.span_id,
        start_ns,
        end_ns,
        span.status.status_code is StatusCode.ERROR,
        unread_attributes(span),
        span.resource,
    )


def generation_row(span: ReadableSpan) -> GenerationRow | None:
    """The row for ``span``, or ``None`` when it is not a generation (or not finished)."""
    record = span_record(span)
    return None if record is None else record_row(record)


def record_row(record: SpanRecord) -> GenerationRow | None:
    """The row for a :func:`span_record`, or ``None`` when it is not a generation."""
    trace_id, span_id, start_ns, end_ns, is_error, lazy_attributes, resource = record
    figures = priced_figures(lazy_attributes)  # prices it now if nobody has yet
    attributes = _plain(lazy_attributes)
    if not is_generation(attributes):
        return None
    if not _storable(start_ns, end_ns):
        return None  # a peer's time past 2262: not a generation we can place in any window
    status = attributes.get(attrs.COST_STATUS)
    if figures is not None:
        cost_femto, input_cost, output_cost, cost_details = _figures_costs(figures)
    else:
        cost_femto, input_cost, output_cost, cost_details = _costs(attributes)
    if not _storable(cost_femto, input_cost, output_cost):
        # A provided cost that is negative or over $9,223 (2**63 femto-dollars) for one
        # request is no cost we can believe (nor store): unpriced.
        cost_femto = input_cost = output_cost = None
        cost_details = None
    if cost_femto is None and status == attrs.COST_STATUS_NO_USAGE:
        cost_femto = input_cost = output_cost = 0  # nothing billable: a true $0
    usage_details: str | None
    if figures is not None and figures.usage_details is not None:
        input_tokens, output_tokens = figures.input_tokens, figures.output_tokens
        total_tokens, usage_details = figures.total_tokens, figures.usage_details
    else:
        input_tokens, output_tokens, total_tokens, usage_details = _tokens(attributes)
    if not _storable(input_tokens, output_tokens, total_tokens):
        input_tokens = output_tokens = total_tokens = 0  # counts as sent stay on the span
        usage_details = None
    prices_version = attributes.get(attrs.PRICES_VERSION)
    error_type = attributes.get(attrs.ERROR_TYPE)
    operation = attributes.get(attrs.GEN_AI_OPERATION_NAME)
    service_name = resource.attributes.get(_SERVICE_NAME) if resource is not None else None
    model = _bounded(first_text(attributes, MODEL_KEYS))
    requested = attributes.get(attrs.GEN_AI_REQUEST_MODEL)
    request_model = _bounded(requested) if isinstance(requested, str) and requested else None
    return GenerationRow(
        format(trace_id, "032x"),
        format(span_id, "016x"),
        start_ns,
        end_ns,
        # Names are cut to MAX_NAME_CHARS: a peer's 7 MiB model name is not kept 7 MiB a row.
        _bounded(first_text(attributes, attrs.USER_ID_KEYS)),
        _bounded(first_text(attributes, attrs.SESSION_ID_KEYS)),
        model,
        _bounded(first_text(attributes, PROVIDER_KEYS)),
        _bounded(operation if isinstance(operation, str) else None),
        input_tokens,
        output_tokens,
        total_tokens,
        usage_details,
        cost_femto,
        input_cost,
        output_cost,
        cost_details,
        status if isinstance(status, str) else None,
        prices_version if isinstance(prices_version, str) else None,
        max(0, end_ns - start_ns) / 1e6,
        _ttft_ms(attributes, start_ns),
        1 if is_error else 0,
        _bounded(str(error_type) if error_type is not None else ("error" if is_error else None)),
        _bounded(service_name if isinstance(service_name, str) else None),
        _tags(attributes.get(attrs.LANGFUSE_TRACE_TAGS)),
        request_model if request_model != model else None,
    )


def _figures_costs(
    figures: PricedFigures,
) -> tuple[int | None, int | None, int | None, str | None]:
    return (
        figures.cost_femto,
        figures.input_cost_femto,
        figures.output_cost_femto,
        figures.cost_details,
    )
