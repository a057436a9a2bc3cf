"""``Cost``: the USD cost of one usage, by bucket, with how it was priced.

Amounts are kept as integers of 1e-15 USD ("femto-dollars", otel_gemini/_money.py) while
pricing, so the breakdown adds up to the total exactly whatever the caller's ``decimal``
context; they become :class:`~decimal.Decimal` only when read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from otel_gemini import _attributes as attrs
from otel_gemini._money import FEMTO_PER_USD, cost_details_json, details_json, femto_text

PRICED: Final = attrs.COST_STATUS_PRICED
UNKNOWN_MODEL: Final = attrs.COST_STATUS_UNKNOWN_MODEL
NO_USAGE: Final = attrs.COST_STATUS_NO_USAGE
IMPLAUSIBLE_USAGE: Final = attrs.COST_STATUS_IMPLAUSIBLE_USAGE


class Cost:
    """What a usage cost, in USD, split into the same buckets as :attr:`usage_details`.

    ``status`` is ``"priced"``, ``"unknown_model"`` (no price for the model, or for a kind of
    usage it reported: ``total`` is ``None``, never a false ``0``), ``"no_usage"`` (nothing
    billable was reported: ``total`` is ``0``) or ``"implausible_usage"`` (a count no request
    can bill: negative, fractional, not finite or above ``MAX_TOKENS_PER_REQUEST``; ``total``
    is ``None`` and :attr:`usage_details` empty; :attr:`reason` says which count).
    """

    __slots__ = (
        "_details",
        "_femto",
        "_femto_total",
        "clamped",
        "effective_from",
        "model",
        "price_model",
        "prices_version",
        "reason",
        "service_tier",
        "source",
        "status",
    )

    status: str
    model: str
    """The model name that was asked for."""
    price_model: str | None
    """The price-table entry that priced it (e.g. ``gemini-2.5-flash``), if any."""
    prices_version: str
    """The version of the price table (with override files, ``default+override``)."""
    effective_from: date | None
    """The first day of the price period used (``None``: since the model's release)."""
    source: str | None
    """Where the prices used come from (a URL, or the override file)."""
    service_tier: str
    """``standard``, ``batch``, ``flex``, ``priority`` (or a custom tier of an override file)."""
    reason: str | None
    """Why the cost is unknown, when it is."""
    clamped: bool
    """Whether the reported usage was inconsistent and had to be clamped to price it."""

    def __init__(
        self,
        status: str,
        model: str,
        prices_version: str,
        femto: dict[str, int] | None = None,
        details: dict[str, int] | None = None,
        price_model: str | None = None,
        effective_from: date | None = None,
        source: str | None = None,
        service_tier: str = "standard",
        reason: str | None = None,
        clamped: bool = False,
    ) -> None:
        # Positional and slotted: built on the application thread for every priced span.
        self.status = status
        self.model = model
        self.prices_version = prices_version
        self._femto = femto
        self._femto_total = sum(femto.values()) if femto is not None else None
        self._details = details or {}
        self.price_model = price_model
        self.effective_from = effective_from
        self.source = source
        self.service_tier = service_tier
        self.reason = reason
        self.clamped = clamped

    @property
    def is_priced(self) -> bool:
        """Whether a cost is known (status ``priced``)."""
        return self.status == PRICED

    @property
    def total(self) -> Decimal | None:
        """Total USD: the exact sum of :attr:`breakdown`; ``None`` when unknown."""
        if self._femto_total is None:
            return None
        return Decimal(femto_text(self._femto_total))

    @property
    def total_femto(self) -> int | None:
        """Total in whole units of 1e-15 USD (exact; for summing many costs)."""
        return self._femto_total

    @property
    def total_float(self) -> float | None:
        """Total USD as the nearest float (for span attributes and metrics)."""
        if self._femto_total is None:
            return None
        return self._femto_total / FEMTO_PER_USD

    @property
    def femto_breakdown(self) -> Mapping[str, int]:
        """Femto-dollars (1e-15 USD) by bucket, exact (empty when unpriced)."""
        return MappingProxyType(self._femto or {})

    @property
    def breakdown(self) -> Mapping[str, Decimal]:
        """USD by bucket; the keys are those of :attr:`usage_details`."""
        femto = self._femto or {}
        return MappingProxyType({key: Decimal(femto_text(value)) for key, value in femto.items()})

    @property
    def usage_details(self) -> Mapping[str, int]:
        """Mutually exclusive usage buckets (tokens; images; video seconds, rounded)."""
        return MappingProxyType(self._details)

    @property
    def has_usage_details(self) -> bool:
        """Whether :attr:`usage_details` has any bucket (cheaper than building it)."""
        return bool(self._details)

    def cost_details_json(self) -> str:
        """``langfuse.observation.cost_details``: USD by bucket plus ``total`` (exact decimals)."""
        return cost_details_json(self._femto or {}, self._femto_total or 0)

    def usage_details_json(self) -> str:
        """``langfuse.observation.usage_details``: the buckets' units plus ``total``."""
        details = self._details
        return details_json(details, sum(details.values()))

    def femto_by_direction(self) -> tuple[int, int]:
        """Femto-dollars of the buckets whose name has ``input``, and of those with
        ``output`` (Langfuse's inputCost and outputCost); ``(0, 0)`` when unpriced."""
        input_femto = output_femto = 0
        for key, amount in (self._femto or {}).items():
            if "input" in key:
                input_femto += amount
            if "output" in key:
                output_femto += amount
        return input_femto, output_femto

    def units_by_direction(self) -> tuple[int, int, int]:
        """Units of the :attr:`usage_details` buckets whose name has ``input``, of those
        with ``output``, and of all of them."""
        input_units = output_units = total = 0
        for key, units in self._details.items():
            total += units
            if "input" in key:
                input_units += units
            if "output" in key:
                output_units += units
        return input_units, output_units, total

    def __repr__(self) -> str:
        return (
            f"Cost(status={self.status!r}, model={self.model!r}, total={self.total!r}, "
            f"breakdown={dict(self.breakdown)!r}, service_tier={self.service_tier!r}, "
            f"prices_version={self.prices_version!r})"
        )
