"""``CostSpanProcessor``: prices GenAI spans and hands an enriched copy downstream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_gemini import _attributes as attrs
from otel_gemini._span_usage import BILLED_TYPES, USAGE_KEYS, is_billed
from otel_gemini.pricing import PriceTable
from otel_gemini.processing._cost_metrics import CostMetrics
from otel_gemini.processing._coverage import Coverage, Release
from otel_gemini.processing._live_session_cost import LiveSessionCosts, is_live_session
from otel_gemini.processing._priced_span import CostAttributes, PricedSpan, plain_attributes
from otel_gemini.processing._span_pricer import SpanPricer

# What a covered span gets on top of its own attributes. Langfuse prices every observation
# that names a model from its own table, whatever its type: a provided cost (zero) is what
# stops that; the type ``span`` keeps it out of generation counts and usage totals.
_COVERED_ATTRIBUTES: Final = {
    attrs.COST_STATUS: attrs.COST_STATUS_COVERED,
    attrs.LANGFUSE_OBSERVATION_TYPE: "span",
    attrs.LANGFUSE_COST_DETAILS: '{"total":0}',
}


class CostSpanProcessor(SpanProcessor):
    """Prices spans that report GenAI usage and passes an enriched copy to ``downstream``.

    Chain it in front of the processor that exports (or stores) spans::

        provider.add_span_processor(CostSpanProcessor(BatchSpanProcessor(exporter)))

    A span with usage attributes (ours, the official OTel google-genai instrumentation's or
    OpenInference's) is priced with ``prices`` (default: :meth:`PriceTable.from_env`) at the
    price of its start day; ``downstream`` gets a copy with ``gen_ai.usage.cost``,
    ``langfuse.observation.cost_details``, ``langfuse.observation.usage_details``,
    ``otel_gemini.cost.status``, ``otel_gemini.prices.version`` and
    ``otel_gemini.prices.model``. A model without a price gets status ``unknown_model`` and
    no cost (never a false $0); it is counted and logged once per model. Spans without usage,
    and grouping spans (Langfuse type ``agent``, ``span``, ``tool``…, or an agent run or tool
    by ``gen_ai.operation.name``: ``invoke_agent``, ``invoke_workflow``, ``create_agent``,
    ``execute_tool``), pass through untouched.

    ``on_end`` runs on the application thread, so it only copies the span: the price is
    worked out when the copy's attributes are first read (on the export thread behind a
    ``BatchSpanProcessor``), once. Nothing here raises into the application: an internal
    error is logged once, counted, and the span goes on unpriced.

    ``meter_provider`` receives the cost metric (``otel_gemini.client.cost``, see
    ``docs/costs.md``); ``metric_user_id`` adds ``user.id`` to it (off by default: one series
    per user can be very many series).

    A Live API session span (a grouping span, never priced itself) gets the sum of its turns'
    costs as ``otel_gemini.live.cost`` and ``otel_gemini.live.cost_details`` (docs/live.md).

    One billed request, one price: a span with usage over a descendant with usage (a
    framework's model-call span over ours, the official google-genai instrumentation's span
    over ours), or with the ``gen_ai.response.id`` of another instrumentation's priced span,
    is *covered*: ``otel_gemini.cost.status=covered``, its usage kept, no cost, and no row,
    metric or Langfuse cost (see ``docs/costs.md``). Only the span closest to the wire is
    priced. A span with usage that ends before its descendants is held back until they end.
    A Langfuse SDK generation stating usage only as ``langfuse.observation.usage_details`` (or
    a cost) is never priced, but is covered the same way over a priced descendant. LangSmith's
    OTel-mode spans of Gemini calls (a trace of their own) are covered once our instrumentation
    is active in the process (``docs/frameworks.md``).
    """

    def __init__(
        self,
        downstream: SpanProcessor,
        prices: PriceTable | None = None,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        metric_user_id: bool = False,
    ) -> None:
        self._downstream = downstream
        table = prices if prices is not None else PriceTable.from_env()
        self._pricer = SpanPricer(table, CostMetrics(meter_provider, user_id=metric_user_id))
        self._live_sessions = LiveSessionCosts(self._pricer.report_error)
        self._coverage = Coverage()

    @property
    def prices(self) -> PriceTable:
        """The price table in use."""
        return self._pricer.prices

    def stats(self) -> dict[str, Any]:
        """For health reports: spans by pricing status (``priced``, ``unknown_model``,
        ``no_usage``, ``covered``, ``error``), errors by place, clamped usages, unknown model
        names, and under ``coverage`` the non-zero counts of covered and held-back spans."""
        stats = self._pricer.stats()
        stats["coverage"] = self._coverage.stats()
        return stats

    # --- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            released = self._coverage.started(span)
        except Exception as error:
            self._pricer.report_error("coverage", error)
            released = []
        try:
            self._downstream.on_start(span, parent_context=parent_context)
        except Exception as error:
            self._pricer.report_error("downstream on_start", error)
        if released:
            self._forward_released(released)

    def _on_ending(self, span: Span) -> None:
        hook = getattr(self._downstream, "_on_ending", None)
        if hook is None:
            return
        try:
            hook(span)
        except Exception as error:
            self._pricer.report_error("downstream _on_ending", error)

    def on_end(self, span: ReadableSpan) -> None:
        released: list[Release] = []
        covered: bool | None = False
        attributes = span.attributes
        billed = _billed(attributes)
        declared = not billed and _declares_usage(attributes)
        try:
            covered, released = self._coverage.ended(span, billed, declared)
        except Exception as error:
            self._pricer.report_error("coverage", error)
        if covered is not None:  # None: held back until its descendants end
            self._forward(span, covered, billed)
        if released:
            self._forward_released(released)

    def shutdown(self) -> None:
        self.release_held()
        self._downstream.shutdown()

    def release_held(self) -> None:
        """Hands downstream the spans held back for their open descendants, decided on what
        is known now (``shutdown`` does it; so does ``Telemetry.shutdown``)."""
        self._forward_released(self._coverage.release_all())

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._downstream.force_flush(timeout_millis)

    def _forward(self, span: ReadableSpan, covered: bool, billed: bool = True) -> None:
        try:
            if covered:
                forwarded = self._covered_copy(span)
            elif billed:
                forwarded = self._priced_copy(span)
            else:
                forwarded = self._unpriced_copy(span)
        except Exception as error:
            self._pricer.report_error("pricing", error)
            forwarded = span
        try:
            self._downstream.on_end(forwarded)
        except Exception as error:
            self._pricer.report_error("downstream on_end", error)

    def _forward_released(self, released: list[Release]) -> None:
        for span, covered in released:  # all held spans: they have usage
            self._forward(span, covered)

    def unrecorded_copy(self, span: ReadableSpan) -> ReadableSpan:
        """The priced copy of a span built for a call whose span was not recorded (sampled
        out; ``UnrecordedPricing`` builds it): priced like any span with usage, lazily and
        once. No covered-span rules (there is no span tree to look at) and no Live session
        total (the session's span was not recorded either)."""
        attributes = span.attributes
        if not _billed(attributes):
            return span  # a failed request without usage: a row, no price
        return PricedSpan(
            span, CostAttributes(attributes or {}, self._pricer, span.start_time or 0)
        )

    def report_error(self, where: str, error: BaseException) -> None:
        """Counts an internal error and logs it the first time it happens at ``where``."""
        self._pricer.report_error(where, error)

    def _covered_copy(self, span: ReadableSpan) -> ReadableSpan:
        attributes = plain_attributes(span.attributes or {})
        attributes.update(_COVERED_ATTRIBUTES)
        self._pricer.metrics.record(attrs.COST_STATUS_COVERED)
        self._coverage.warn_once(span)
        return PricedSpan(span, attributes)

    def _unpriced_copy(self, span: ReadableSpan) -> ReadableSpan:
        """A span without usage to price: a Live session span gets its turns' costs."""
        attributes = span.attributes
        if attributes and is_live_session(attributes):
            return self._live_sessions.session_copy(span)
        return span

    def _priced_copy(self, span: ReadableSpan) -> ReadableSpan:
        """A span with usage, of a billed type (held spans and ``_billed`` ones only)."""
        attributes = span.attributes or {}
        priced = CostAttributes(attributes, self._pricer, span.start_time or 0)
        if attrs.LIVE_TURN_INDEX in attributes and span.parent is not None:
            self._live_sessions.add_turn(span.parent, priced)
        return PricedSpan(span, priced)


def _billed(attributes: Mapping[str, Any] | None) -> bool:
    """Whether the processor prices a span with these attributes (usage, billed type)."""
    if not attributes:
        return False
    return not USAGE_KEYS.isdisjoint(attributes) and is_billed(attributes)


def _declares_usage(attributes: Mapping[str, Any] | None) -> bool:
    """Whether a span states usage or cost only in Langfuse's form, on a billed type: a
    Langfuse SDK generation's ``update(usage_details=..., cost_details=...)``. Never priced
    (we cannot read its buckets); covered when one of our priced spans is below it."""
    if not attributes or attributes.get(attrs.LANGFUSE_OBSERVATION_TYPE) not in BILLED_TYPES:
        return False
    return attrs.LANGFUSE_USAGE_DETAILS in attributes or attrs.LANGFUSE_COST_DETAILS in attributes
