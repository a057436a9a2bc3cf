"""The cost metric: USD spent by model and provider (and user, when opted in).

The GenAI semantic conventions define no cost metric, so ours lives under ``otel_gemini.``:

- ``otel_gemini.client.cost`` (counter, ``USD``): attributes ``gen_ai.request.model`` (the
  model name that was priced, without resource prefix), ``gen_ai.provider.name`` and, only
  with ``metric_user_id=True``, ``user.id``;
- ``otel_gemini.cost.spans`` (counter, ``{span}``): spans seen by the cost processor, by
  ``otel_gemini.cost.status`` (``priced``, ``unknown_model``, ``no_usage``, ``covered``,
  ``error``).

Both are observable counters over running totals: the application thread only adds to a
dictionary, and the SDK reads the totals when it collects.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from otel_gemini import _attributes as attrs
from otel_gemini._background import renew_locks_after_fork
from otel_gemini._money import FEMTO_PER_USD
from otel_gemini._version import __version__

SCOPE: Final = "otel_gemini.processing"
COST_METRIC: Final = "otel_gemini.client.cost"
SPANS_METRIC: Final = "otel_gemini.cost.spans"
STATUS_ERROR: Final = "error"
# Past this many attribute sets, new ones are folded into one overflow series.
MAX_SERIES: Final = 2000
_OVERFLOW: Final = (("otel.metric.overflow", True),)

_Key = tuple[tuple[str, str | bool], ...]


class CostMetrics:
    """Running cost and span-status totals, reported through two observable counters."""

    def __init__(
        self, meter_provider: metrics.MeterProvider | None = None, *, user_id: bool = False
    ) -> None:
        self._user_id = user_id
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._cost: dict[_Key, int] = {}  # femto-USD
        self._spans: dict[str, int] = {}
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        meter.create_observable_counter(
            COST_METRIC,
            callbacks=[self._observe_cost],
            unit="USD",
            description="Cost of GenAI requests as priced by otel-gemini's price table",
        )
        meter.create_observable_counter(
            SPANS_METRIC,
            callbacks=[self._observe_spans],
            unit="{span}",
            description="Spans seen by the cost processor, by pricing status",
        )

    def record(
        self,
        status: str,
        femto: int = 0,
        model: str = "",
        provider: str | None = None,
        user_id: str | None = None,
    ) -> None:
        """Count one span by status and, when priced, add its cost (femto-USD)."""
        key: _Key | None = None
        if femto:
            key = ((attrs.GEN_AI_REQUEST_MODEL, model),)
            if provider:
                key += ((attrs.GEN_AI_PROVIDER_NAME, provider),)
            if self._user_id and user_id:
                key += ((attrs.USER_ID, user_id),)
        with self._lock:
            spans = self._spans
            spans[status] = spans.get(status, 0) + 1
            if key is not None:
                cost = self._cost
                if key not in cost and len(cost) >= MAX_SERIES:
                    key = _OVERFLOW
                cost[key] = cost.get(key, 0) + femto

    def span_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._spans)

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            totals = list(self._cost.items())
        return [Observation(femto / FEMTO_PER_USD, dict(key)) for key, femto in totals]

    def _observe_spans(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            counts = list(self._spans.items())
        return [Observation(count, {attrs.COST_STATUS: status}) for status, count in counts]
