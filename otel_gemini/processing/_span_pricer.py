"""Pricing one span's attributes, and what the processor tells about it (logs, counts, metric)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Final

from otel_gemini import _attributes as attrs
from otel_gemini._background import renew_locks_after_fork
from otel_gemini._incidents import IncidentLog
from otel_gemini._limits import QUOTE_CHARS, cut, quote
from otel_gemini._money import FEMTO_PER_USD
from otel_gemini._span_usage import read_span_usage
from otel_gemini.pricing import Cost, PriceTable, normalize_model_name
from otel_gemini.processing._cost_metrics import STATUS_ERROR, CostMetrics
from otel_gemini.processing._priced_span import PricedFigures

_logger = logging.getLogger("otel_gemini.processing")
# Bounds the "logged once" memory when a flood of distinct unknown model names arrives:
# at most this many keys, each of at most MAX_NAME_CHARS + a prefix (under 300 KB).
_MAX_REMEMBERED: Final = 1000
# The unknown names health shows: at most this many, each cut to MAX_NAME_CHARS (health
# stays small whatever names peers send; the full list is in no one's interest).
_MAX_UNKNOWN_SHOWN: Final = 50
# A log line quoting span content (usage attributes of an inconsistent span) is cut here.
_MAX_LOGGED_CHARS: Final = 1000


class SpanPricer:
    """Adds cost attributes to span attributes; logs once, counts, never raises."""

    def __init__(self, prices: PriceTable, metrics: CostMetrics) -> None:
        self.prices = prices
        self.metrics = metrics
        self.lock = threading.Lock()
        """Held while pricing a span (see ``CostAttributes.resolved``)."""
        self._incidents_lock = threading.Lock()
        renew_locks_after_fork(self, "lock", "_incidents_lock")
        self._incidents = IncidentLog(_logger, _MAX_REMEMBERED)
        self._unknown_models: set[str] = set()
        self._inconsistent = 0
        self._implausible = 0

    def price_attributes(self, attributes: dict[str, Any], start_ns: int) -> PricedFigures | None:
        """Add ``gen_ai.usage.cost``, the Langfuse details and our status to ``attributes``
        and return the figures behind them (``None`` if pricing failed: no cost added).

        Usage details go on every span with usage, priced or not; cost only on priced ones."""
        try:
            return self._price(attributes, start_ns)
        except Exception as error:
            self.report_error("pricing", error)
            return None

    def _price(self, attributes: dict[str, Any], start_ns: int) -> PricedFigures:
        found = read_span_usage(attributes)
        prices = self.prices
        cost: Cost | None = None
        model = ""
        for model in prices.most_specific_first(found.models):
            cost = prices.cost_at_ns(
                model, found.usage, start_ns, service_tier=found.service_tier, live=found.live
            )
            if cost.price_model is not None:
                break
        if cost is None:  # usage but no model name at all
            cost = prices.cost_at_ns("", found.usage, start_ns)
        status = cost.status
        version = prices.version
        added: dict[str, Any] = {attrs.COST_STATUS: status, attrs.PRICES_VERSION: version}
        price_model = cost.price_model
        if price_model is not None:
            added[attrs.PRICES_MODEL] = price_model
        femto = 0
        cost_femto = input_cost = output_cost = None
        cost_details: str | None = None
        usage_details: str | None = None
        if status == attrs.COST_STATUS_IMPLAUSIBLE_USAGE:
            added[attrs.COST_REASON] = cost.reason
            # An empty object, so Langfuse neither shows nor prices the counts as sent (with
            # no usage details it would read gen_ai.usage.* and price them from its table).
            usage_details = added[attrs.LANGFUSE_USAGE_DETAILS] = "{}"
        elif status == attrs.COST_STATUS_PRICED:
            femto = cost_femto = cost.total_femto or 0
            added[attrs.GEN_AI_USAGE_COST] = femto / FEMTO_PER_USD
            cost_details = added[attrs.LANGFUSE_COST_DETAILS] = cost.cost_details_json()
            input_cost, output_cost = cost.femto_by_direction()
        input_tokens, output_tokens, total_tokens = cost.units_by_direction()
        if cost.has_usage_details:
            # Priced or not: without it Langfuse parses gen_ai.usage.* itself, keeps each
            # per-modality count as one more bucket and sums them all into the total (160
            # tokens become 320). A cost it cannot know stays absent, never a false 0.
            usage_details = added[attrs.LANGFUSE_USAGE_DETAILS] = cost.usage_details_json()
        # All or nothing: a failure above leaves the span unpriced, never half priced.
        attributes.update(added)
        figures = PricedFigures(
            status,
            version,
            cost_femto,
            input_cost,
            output_cost,
            cost_details,
            input_tokens,
            output_tokens,
            total_tokens,
            usage_details,
        )
        if femto:
            # Metric attributes are kept for the process's life: bounded like any name.
            provider, user_id = found.provider, found.user_id
            self.metrics.record(
                status,
                femto,
                normalize_model_name(model),
                cut(provider) if provider else provider,
                cut(user_id) if user_id else user_id,
            )
        else:
            self.metrics.record(status)
        if status == attrs.COST_STATUS_UNKNOWN_MODEL:
            self._report_unknown(found.models, cost.reason)
        elif status == attrs.COST_STATUS_IMPLAUSIBLE_USAGE:
            self._report_implausible(cost.reason)
        if cost.clamped:
            self._report_inconsistent(cost.price_model or model, attributes)
        return figures

    # --- incidents ---------------------------------------------------------------------------

    def _report_unknown(self, models: tuple[str, ...], reason: str | None) -> None:
        # Names are cut before they are kept or logged: a peer sending 7 MiB names must not
        # make us hold (or print) them.
        name = cut(models[0]) if models else "(no model name)"
        with self._incidents_lock:
            if len(self._unknown_models) < _MAX_UNKNOWN_SHOWN:
                self._unknown_models.add(name)
        if self._incidents.first_time(f"unknown:{name}"):
            _logger.warning(
                "otel-gemini: cannot price model %r (%s); its spans carry "
                "otel_gemini.cost.status=unknown_model and no cost. Add a price with an "
                "override file (OTEL_GEMINI_PRICES, see docs/costs.md). Logged once per model.",
                name,
                cut(reason or "no price", QUOTE_CHARS * 2),
            )

    def _report_implausible(self, reason: str | None) -> None:
        with self._incidents_lock:
            self._implausible += 1
        if self._incidents.first_time("implausible"):
            _logger.warning(
                "otel-gemini: a span reports usage no Gemini request can bill (%s); it "
                "carries otel_gemini.cost.status=implausible_usage and no cost (counted in "
                "health under pricing.implausible_usage; see docs/security.md). Logged once.",
                cut(reason or "", QUOTE_CHARS * 2),
            )

    def _report_inconsistent(self, model: str, attributes: dict[str, Any]) -> None:
        with self._incidents_lock:
            self._inconsistent += 1
        if self._incidents.first_time(f"inconsistent:{cut(model)}"):
            usage = {key: value for key, value in attributes.items() if "usage" in key}
            _logger.warning(
                "otel-gemini: inconsistent usage on a %s span (a part exceeds its total); "
                "priced after clamping the parts. Logged once per model. Usage: %s",
                quote(model),
                cut(repr(usage), _MAX_LOGGED_CHARS),
            )

    def report_error(self, where: str, error: BaseException) -> None:
        """Count an internal error and log it the first time it happens at ``where``."""
        if where == "pricing":
            self.metrics.record(STATUS_ERROR)
        self._incidents.error(
            where,
            error,
            "otel-gemini cost processor error in %s (logged once; the span goes on unpriced): %s",
            where,
            cut(repr(error), _MAX_LOGGED_CHARS),
        )

    def stats(self) -> dict[str, Any]:
        """Spans by pricing status, errors by place, inconsistent and implausible usages,
        unknown models (at most ``_MAX_UNKNOWN_SHOWN``, each cut to ``MAX_NAME_CHARS``)."""
        spans = self.metrics.span_counts()
        with self._incidents_lock:
            return {
                "spans": spans,
                "errors": self._incidents.counts(),
                "inconsistent_usage": self._inconsistent,
                "implausible_usage": self._implausible,
                "unknown_models": sorted(self._unknown_models),
            }
