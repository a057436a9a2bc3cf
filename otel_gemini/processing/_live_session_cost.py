"""A Live session's cost: the sum of its turns' costs, added to the session span's copy.

Each turn of a Live session is a billed generation span (priced like any other); the session
span only groups them. So that the session shows what it cost without anything counting it
twice, the processor remembers the priced copies of the turns by their parent (the session
span) and, when the session span ends, hands downstream a copy carrying
``otel_gemini.live.cost`` (USD), ``otel_gemini.live.cost_details`` (USD by bucket, with
``total``) and ``otel_gemini.live.cost.status`` — names Langfuse does not read as a cost, so
its trace total stays the sum of the generations. Like turn pricing, the sum is worked out
when the copy's attributes are first read (on the export thread behind a batch processor).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext

from otel_gemini import _attributes as attrs
from otel_gemini._background import fork_hooks, renew_locks_after_fork
from otel_gemini._money import TOTAL, cost_details_femto, cost_details_json, femto_float
from otel_gemini.processing._priced_span import CostAttributes, PricedSpan

# Sessions whose turns are remembered at once; beyond, the oldest is forgotten (its session
# span never came: not sampled, or lost), so memory stays bounded.
MAX_OPEN_SESSIONS: Final = 10_000

ErrorReporter = Callable[[str, BaseException], None]


def is_live_session(attributes: Mapping[str, Any]) -> bool:
    """Whether a span is a Live session span (our instrumentation's grouping span)."""
    return (
        attrs.LIVE_TURN_COUNT in attributes
        and attributes.get(attrs.LANGFUSE_OBSERVATION_TYPE) == "span"
    )


class LiveSessionCosts:
    """The priced turn copies of open Live sessions, by session span. Thread-safe."""

    def __init__(self, report_error: ErrorReporter, max_sessions: int = MAX_OPEN_SESSIONS) -> None:
        self._report_error = report_error
        self._max_sessions = max_sessions
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._turns: OrderedDict[tuple[int, int], list[Mapping[str, Any]]] = OrderedDict()
        fork_hooks(after_in_child=self._forget_in_child)

    def _forget_in_child(self) -> None:
        # The parent's open sessions end in the parent: a forked child has none of its own.
        self._turns = OrderedDict()

    def add_turn(self, session: SpanContext, turn_attributes: Mapping[str, Any]) -> None:
        """Remember a turn's (priced, possibly not yet resolved) attributes."""
        key = (session.trace_id, session.span_id)
        with self._lock:
            turns = self._turns.get(key)
            if turns is None:
                if len(self._turns) >= self._max_sessions:
                    self._turns.popitem(last=False)
                turns = self._turns[key] = []
            turns.append(turn_attributes)

    def session_copy(self, span: ReadableSpan) -> ReadableSpan:
        """The session span's copy with its cost attributes (added on first read)."""
        context = span.context
        turns: list[Mapping[str, Any]] = []
        if context is not None:
            with self._lock:
                turns = self._turns.pop((context.trace_id, context.span_id), [])
        pricer = _SessionPricer(turns, self._report_error)
        return PricedSpan(span, CostAttributes(span.attributes or {}, pricer, span.start_time or 0))

    def __len__(self) -> int:
        with self._lock:
            return len(self._turns)


class _SessionPricer:
    """Adds up the turns' costs into a session's attributes (an ``AttributePricer``)."""

    __slots__ = ("_report_error", "_turns", "lock")

    def __init__(self, turns: list[Mapping[str, Any]], report_error: ErrorReporter) -> None:
        self.lock = threading.Lock()  # not the span pricer's: resolving a turn takes that one
        self._turns = turns
        self._report_error = report_error

    def price_attributes(self, attributes: dict[str, Any], start_ns: int) -> None:
        try:
            attributes.update(session_cost_attributes(self._turns))
        except Exception as error:
            self._report_error("live session cost", error)


def session_cost_attributes(turns: list[Mapping[str, Any]]) -> dict[str, Any]:
    """``otel_gemini.live.cost*`` for a session with these priced turn attributes."""
    statuses = [turn.get(attrs.COST_STATUS) for turn in turns]
    known = (attrs.COST_STATUS_PRICED, attrs.COST_STATUS_NO_USAGE)
    if any(status not in known for status in statuses):
        return {attrs.LIVE_SESSION_COST_STATUS: attrs.COST_STATUS_UNKNOWN_MODEL}
    if attrs.COST_STATUS_PRICED not in statuses:
        return {attrs.LIVE_SESSION_COST_STATUS: attrs.COST_STATUS_NO_USAGE}
    femto: dict[str, int] = {}
    total = 0
    for turn, status in zip(turns, statuses, strict=True):
        if status != attrs.COST_STATUS_PRICED:
            continue
        for bucket, value in cost_details_femto(str(turn[attrs.LANGFUSE_COST_DETAILS])).items():
            if bucket == TOTAL:
                total += value
            else:
                femto[bucket] = femto.get(bucket, 0) + value
    return {
        attrs.LIVE_SESSION_COST_STATUS: attrs.COST_STATUS_PRICED,
        attrs.LIVE_SESSION_COST: femto_float(total),
        attrs.LIVE_SESSION_COST_DETAILS: cost_details_json(femto, total),
    }
