"""``CostSpanProcessor``: prices GenAI spans and hands an enriched copy downstream."""

from __future__ import annotations

from typing import Any

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_gemini import _attributes as attrs
from otel_gemini.pricing import PriceTable
from otel_gemini.processing._cost_metrics import CostMetrics
from otel_gemini.processing._live_session_cost import LiveSessionCosts, is_live_session
from otel_gemini.processing._priced_span import CostAttributes, PricedSpan
from otel_gemini.processing._span_pricer import SpanPricer
from otel_gemini.processing._span_usage import USAGE_KEYS, is_billed


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
    and grouping spans (Langfuse type ``agent``, ``span``, ``tool``…), pass through untouched.

    ``on_end`` runs on the application thread, so it only copies the span: the price is
    worked out when the copy's attributes are first read (on the export thread behind a
    ``BatchSpanProcessor``), once. Nothing here raises into the application: an internal
    error is logged once, counted, and the span goes on unpriced.

    ``meter_provider`` receives the cost metric (``otel_gemini.client.cost``, see
    ``docs/costs.md``); ``metric_user_id`` adds ``user.id`` to it (off by default: one series
    per user can be very many series).

    A Live API session span (a grouping span, never priced itself) gets the sum of its turns'
    costs as ``otel_gemini.live.cost`` and ``otel_gemini.live.cost_details`` (docs/live.md).
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

    @property
    def prices(self) -> PriceTable:
        """The price table in use."""
        return self._pricer.prices

    def stats(self) -> dict[str, Any]:
        """For health reports: spans by pricing status (``priced``, ``unknown_model``,
        ``no_usage``, ``error``), errors by place, clamped usages, unknown model names."""
        return self._pricer.stats()

    # --- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self._downstream.on_start(span, parent_context=parent_context)
        except Exception as error:
            self._pricer.report_error("downstream on_start", error)

    def _on_ending(self, span: Span) -> None:
        hook = getattr(self._downstream, "_on_ending", None)
        if hook is None:
            return
        try:
            hook(span)
        except Exception as error:
            self._pricer.report_error("downstream _on_ending", error)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            forwarded = self._priced_copy(span)
        except Exception as error:
            self._pricer.report_error("pricing", error)
            forwarded = span
        try:
            self._downstream.on_end(forwarded)
        except Exception as error:
            self._pricer.report_error("downstream on_end", error)

    def shutdown(self) -> None:
        self._downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._downstream.force_flush(timeout_millis)

    def _priced_copy(self, span: ReadableSpan) -> ReadableSpan:
        attributes = span.attributes
        if not attributes:
            return span
        if USAGE_KEYS.isdisjoint(attributes) or not is_billed(attributes):
            if is_live_session(attributes):
                return self._live_sessions.session_copy(span)
            return span
        priced = CostAttributes(attributes, self._pricer, span.start_time or 0)
        if attrs.LIVE_TURN_INDEX in attributes and span.parent is not None:
            self._live_sessions.add_turn(span.parent, priced)
        return PricedSpan(span, priced)
