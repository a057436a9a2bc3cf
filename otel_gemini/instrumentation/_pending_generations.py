"""Generations that ran after the request that made them, recorded when their usage arrives.

A fetch (``client.interactions.get``) is a ``fetch_response`` span: the conventions forbid
token usage on it, as the tokens were spent by the generation it returns. But a background
interaction (``create(background=True)``) returns ``in_progress`` or ``queued`` before its
generation has run, and a Live one ``idle``, so their create span has no usage; the usage
first reaches the client on a fetch, or (Live) on the connection's ``interaction.completed``
event. A batch job's requests likewise run later, and their usage arrives in the job a get
returns succeeded. So when such a result first arrives, for a request this process made, each
generation is recorded as a span of its own: a child of the creating span (same trace, same
user and session), from the create to the result's time, linked to the span that received
it, with the usage. Once: polling it again bills nothing. When that span is not recorded (a
sampler dropped the creator's trace), the generation is handed to the pipeline as any
sampled-out call of ours is, priced once and stored locally. A fetch cannot tell such a result
from one billed at its create, so results of requests made in another process (or before a
restart) are not billed here.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._background import renew_locks_after_fork
from otel_gemini._trace_attributes import current_trace_attributes, restored_trace_attributes
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._invocation import Invocation, record_metrics
from otel_gemini.instrumentation._metric_points import MetricPoints
from otel_gemini.instrumentation._unrecorded_calls import UnrecordedCall

# Requests awaiting their usage (a finished fetch, a Live connection's completion, a batch).
# One whose result is never read here (read elsewhere, or abandoned) would stay forever: past
# this many, the oldest are forgotten.
_MAX_PENDING = 10_000


class PendingGeneration(NamedTuple):
    """What a request that runs later leaves for its generation, kept until its usage arrives:
    the generation span's name and request attributes, and the creating span."""

    name: str
    attributes: Mapping[str, AttributeValue]
    """The generation's request attributes (trace attributes included)."""
    span_context: SpanContext
    started_ns: int
    trace_attributes: Mapping[str, AttributeValue]
    """The creator's ``trace_attributes()`` (only those: a copy of the whole context would
    keep the application's request state alive until the result arrives)."""
    metric_points: MetricPoints
    """Built once for all the generations of the request (a batch job has many)."""


def pending_generation(
    name: str, attributes: Mapping[str, AttributeValue], creator: Invocation
) -> PendingGeneration:
    """What the request of ``creator`` (ended) leaves for its generations: their span name
    and request attributes, its span, start and the current trace attributes."""
    # The generations start with the creating request (so are priced at its date).
    return PendingGeneration(
        name,
        attributes,
        creator.span.get_span_context(),
        creator.start_time_ns(),
        current_trace_attributes(),
        MetricPoints(attributes),
    )


class PendingGenerations:
    """Requests made in this process (interactions created unfinished, batch jobs) whose
    generations are not recorded yet, by the id their result will carry."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, PendingGeneration] = OrderedDict()
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")

    def add(self, result_id: str, pending: PendingGeneration) -> None:
        with self._lock:
            self._pending[result_id] = pending
            if len(self._pending) > _MAX_PENDING:
                self._pending.popitem(last=False)

    def take(self, result_id: str) -> PendingGeneration | None:
        """The pending generation of ``result_id`` (an interaction id, a batch job name),
        now no longer pending."""
        with self._lock:
            return self._pending.pop(result_id, None)


def record_generation(
    instruments: Instruments,
    pending: PendingGeneration,
    generation: Mapping[str, AttributeValue],
    updated: str | datetime | None,
    returned_by: SpanContext | None,
    *,
    ended_ns: int | None = None,
) -> None:
    """A generation's span and token usage, recorded once its result arrived: ``generation``
    are its response attributes (usage included), ``updated`` the interaction's last update
    time (ISO 8601) and ``returned_by`` the span that received it (a fetch), linked.
    ``ended_ns``: when it ended, if known (an agent's request that billed it ended then)."""
    result = {**pending.attributes, **generation}
    now = time.time_ns()
    if ended_ns is None or not pending.started_ns <= ended_ns <= now:
        ended_ns = _time_ns(updated)
    if ended_ns is None or not pending.started_ns <= ended_ns <= now:
        ended_ns = now  # no usable time from the API: when its result arrived
    links = [Link(returned_by)] if returned_by is not None and returned_by.is_valid else None
    name = _span_name(pending, result)
    # Started on the creator's behalf: span processors stamp the creator's trace attributes.
    with restored_trace_attributes(pending.trace_attributes):
        span = instruments.tracer.start_span(
            name,
            trace.set_span_in_context(NonRecordingSpan(pending.span_context)),
            kind=SpanKind.CLIENT,
            attributes=result,
            links=links,
            start_time=pending.started_ns,
        )
    # Not recorded (a sampler dropped its creator's trace, so under ParentBased it too): no
    # processor sees it, so the metrics worker hands it to the pipeline to price and store,
    # as it does any call of ours whose span is not recorded (``_unrecorded_calls``). Its
    # request attributes carry the creator's trace attributes already.
    unrecorded = (
        None
        if span.is_recording()
        else UnrecordedCall(name, SpanKind.CLIENT, result, pending.started_ns, ended_ns)
    )
    # A failure the response reported in-band (an agent's stream's error event).
    error = result.get(attrs.ERROR_TYPE)
    if isinstance(error, str):
        span.set_status(Status(StatusCode.ERROR, f"error reported: {error}"))
    span.end(end_time=ended_ns)
    # Tokens only: the create recorded the operation's duration point already.
    record_metrics(
        instruments,
        pending.metric_points,
        result,
        None,
        error if isinstance(error, str) else None,
        span=span,
        unrecorded=unrecorded,
    )


def _span_name(pending: PendingGeneration, result: Mapping[str, AttributeValue]) -> str:
    """``{operation} {model}``: a generation whose request named no model (an agent's) is
    named after the model that answered, when the response names it."""
    model = result.get(attrs.GEN_AI_RESPONSE_MODEL)
    if (
        pending.name == pending.attributes.get(attrs.GEN_AI_OPERATION_NAME)
        and attrs.GEN_AI_REQUEST_MODEL not in pending.attributes
        and isinstance(model, str)
        and model
    ):
        return f"{pending.name} {model}"
    return pending.name


# ISO 8601 as the API writes it ("2026-11-25T06:40:12.123456789Z"): datetime takes at most
# microseconds and, before Python 3.11, no "Z".
_ISO_TIME = re.compile(
    r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<fraction>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?$"
)


def _time_ns(given: str | datetime | None) -> int | None:
    """Nanoseconds since the epoch of an ISO 8601 time or a datetime, either with a zone;
    None if unreadable."""
    if isinstance(given, datetime):
        if given.tzinfo is None:
            return None
        return int(given.timestamp()) * 1_000_000_000 + given.microsecond * 1000
    match = _ISO_TIME.match(given or "")
    if match is None or match["zone"] is None:
        return None
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    try:
        moment = datetime.fromisoformat(match["base"] + zone)
    except ValueError:
        return None
    fraction = (match["fraction"] or "").ljust(9, "0")[:9]
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)
