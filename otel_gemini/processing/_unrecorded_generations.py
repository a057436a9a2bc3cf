"""Prices the calls whose span was not recorded and hands them to the local store.

``configure()`` registers one :class:`UnrecordedPricing` per tracer provider (see
``otel_gemini/_unrecorded.py``). Each call arrives on the instrumentation's metrics worker as
an :class:`~otel_gemini._unrecorded.UnrecordedGeneration`; it becomes a read-only finished
span (never started on the provider, so no span processor and no exporter sees it), priced by
the cost processor's own pricer, lazily and once, and handed to ``keep`` (the cost store,
whose writer reads it: that read prices it and adds it to the cost metric). Without a store
it is priced at once, for the cost metric.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Status, StatusCode

from otel_gemini._unrecorded import UnrecordedGeneration
from otel_gemini.processing._cost_processor import CostSpanProcessor
from otel_gemini.processing._priced_span import priced_figures, unread_attributes

_SCOPE = InstrumentationScope("otel_gemini.instrumentation")
_FAILED = Status(StatusCode.ERROR)
_UNSET = Status(StatusCode.UNSET)


class UnrecordedPricing:
    """An :class:`~otel_gemini._unrecorded.UnrecordedSink`: prices each call whose span was not
    recorded with ``cost_processor`` and hands the priced span to ``keep``."""

    def __init__(
        self,
        cost_processor: CostSpanProcessor,
        resource: Resource,
        keep: Callable[[ReadableSpan], None] | None,
    ) -> None:
        self._processor = cost_processor
        self._resource = resource
        self._keep = keep

    def on_unrecorded(self, generation: UnrecordedGeneration) -> None:
        try:
            span = ReadableSpan(
                generation.name,
                context=generation.context,
                resource=self._resource,
                attributes=generation.attributes,
                kind=generation.kind,
                status=_FAILED if generation.failed else _UNSET,
                start_time=generation.start_ns,
                end_time=generation.end_ns,
                instrumentation_scope=_SCOPE,
            )
            priced = self._processor.unrecorded_copy(span)
            if self._keep is not None:
                self._keep(priced)
            else:
                priced_figures(unread_attributes(priced))  # priced now: the cost metric
        except Exception as error:
            self._processor.report_error("unrecorded call", error)
