"""The enriched copy of a span that ``CostSpanProcessor`` hands downstream.

Pricing is deferred to the first read of the copy's attributes. With a batching downstream
that read happens on the export thread, so the application thread pays only for the copy
(the architecture's "an in-memory hand-off only"); with a synchronous one it happens at once.
Either way a span is priced exactly once, and every reader sees the same attributes.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, NamedTuple, Protocol

from opentelemetry.sdk.trace import ReadableSpan


class PricedFigures(NamedTuple):
    """The numbers the cost processor worked out for one span, as it computed them: what a
    consumer on our side (the cost store) takes instead of parsing the span's JSON back."""

    status: str
    """``otel_gemini.cost.status``."""
    prices_version: str
    cost_femto: int | None
    """Total in 1e-15 USD; ``None`` when unknown (never a false 0)."""
    input_cost_femto: int | None
    """The buckets whose name has ``input`` (Langfuse's inputCost); ``None`` when unknown."""
    output_cost_femto: int | None
    cost_details: str | None
    """``langfuse.observation.cost_details`` as put on the span (``None``: not priced)."""
    input_tokens: int
    """The usage buckets whose name has ``input``."""
    output_tokens: int
    total_tokens: int
    usage_details: str | None
    """``langfuse.observation.usage_details`` as put on the span (``None``: none)."""


class AttributePricer(Protocol):
    """Adds the cost attributes to a span's attribute dict (in place; never raises) and
    returns the figures behind them (``None`` when pricing failed)."""

    lock: threading.Lock

    def price_attributes(
        self, attributes: dict[str, Any], start_ns: int
    ) -> PricedFigures | None: ...


def plain_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict copy of a span's attributes."""
    copy = getattr(attributes, "copy", None)  # BoundedAttributes and mappingproxy: a dict copy
    plain = copy() if copy is not None else None
    return plain if isinstance(plain, dict) else dict(attributes)


class CostAttributes(Mapping[str, Any]):
    """A span's attributes with its cost attributes, priced on first access."""

    __slots__ = ("_attributes", "_figures", "_pending")

    def __init__(
        self, attributes: Mapping[str, Any], pricer: AttributePricer, start_ns: int
    ) -> None:
        # The finished span's own attributes (no longer changing): copied when priced.
        self._attributes: Mapping[str, Any] = attributes
        self._pending: tuple[AttributePricer, int] | None = (pricer, start_ns)
        self._figures: PricedFigures | None = None

    def unpriced(self) -> Mapping[str, Any]:
        """The attributes as they are now, never pricing them: the span's own until priced,
        then the priced ones (for sizing a span without paying for its price)."""
        return self._attributes

    def figures(self) -> PricedFigures | None:
        """The figures behind the cost attributes (pricing them now if nobody has yet);
        ``None`` when pricing failed (the attributes then carry no cost)."""
        self.resolved()
        return self._figures

    def resolved(self) -> Mapping[str, Any]:
        """The priced attributes (pricing them now if nobody has yet)."""
        pending = self._pending
        if pending is not None:
            pricer, start_ns = pending
            with pricer.lock:  # two exporters reading at once must not price (and count) twice
                if self._pending is not None:
                    priced = plain_attributes(self._attributes)
                    self._figures = pricer.price_attributes(priced, start_ns)
                    self._attributes = priced
                    self._pending = None
        return self._attributes

    def __getitem__(self, key: str) -> Any:
        return self.resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolved())

    def __len__(self) -> int:
        return len(self.resolved())

    def __contains__(self, key: object) -> bool:
        return key in self.resolved()

    def get(self, key: str, default: Any = None) -> Any:
        return self.resolved().get(key, default)

    def keys(self) -> KeysView[str]:
        return self.resolved().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.resolved().items()

    def values(self) -> ValuesView[Any]:
        return self.resolved().values()

    def copy(self) -> dict[str, Any]:
        """A plain dict of the priced attributes (as ``BoundedAttributes.copy`` returns)."""
        return dict(self.resolved())

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle and copy as the plain priced dict, never the pricer (it holds locks).
        return (dict, (self.resolved(),))

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(self.resolved()), memo)

    def __repr__(self) -> str:
        return repr(self.resolved())


def priced_figures(attributes: object) -> PricedFigures | None:
    """The figures the cost processor computed for a span with these attributes (what
    ``span.attributes`` is on the copy it hands downstream); ``None`` for a span it did not
    price here (passed through, covered, or priced elsewhere: read its attributes then)."""
    if type(attributes) is CostAttributes:
        return attributes.figures()
    return None


class PricedSpan(ReadableSpan):
    """A copy of a finished span whose attributes gain the cost ones; the rest is shared."""

    def __init__(self, source: ReadableSpan, attributes: Mapping[str, Any]) -> None:
        # A shallow copy of the SDK's fields keeps events, links, status, resource, scope, ids
        # and times (and whatever later SDK versions add) without re-validating anything.
        self.__dict__.update(source.__dict__)
        self._attributes: Mapping[str, Any] = attributes
        self._dropped_attribute_count = source.dropped_attributes

    @property
    def dropped_attributes(self) -> int:
        return self._dropped_attribute_count


def unread_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """``span``'s attributes, without pricing them: for the cost processor's copy, its lazy
    mapping (``priced_figures`` takes it; reading it prices the span, once); otherwise the
    span's own attributes."""
    if type(span) is PricedSpan:
        return span._attributes
    return span.attributes or {}


def raw_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """``span``'s attributes as its instrumentation set them (the priced ones when already
    priced), never pricing it here: for looking at a span on the application thread."""
    if type(span) is PricedSpan:
        attributes = span._attributes
        if type(attributes) is CostAttributes:
            return attributes.unpriced()
        return attributes
    return span.attributes or {}
