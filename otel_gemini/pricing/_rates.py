"""A price period's rates, resolved once at load time, and the pricing of one usage with them.

Resolution applies a prompt-size tier and a service-tier rule to the prices the table gives,
then fills in the defaults (image/video/audio input at the input price, thinking and
audio/image output at the output price, cache reads at the input price when the table gives
no cache price…), and turns token prices into whole femto-dollars (1e-15 USD) per token so
pricing a span is integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from typing import Final, NamedTuple

from otel_gemini._money import FEMTO_PER_USD
from otel_gemini.pricing import _buckets as buckets
from otel_gemini.pricing._table_file import (
    PRICE_KINDS,
    TOKEN_PRICE_KINDS,
    ServiceTierRule,
)
from otel_gemini.pricing._usage import Usage

# Exact arithmetic whatever decimal context the host application has set.
_EXACT: Final = Context(
    prec=80, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow]
)
_FEMTO_PER_USD_PER_MTOK: Final = 10**9  # USD per 1M tokens -> femto-USD per token

BUCKET_KIND: Final[Mapping[str, str]] = {
    buckets.INPUT: "input",
    buckets.INPUT_IMAGE: "input_image",
    buckets.INPUT_VIDEO: "input_video",
    buckets.INPUT_AUDIO: "input_audio",
    buckets.INPUT_TOOL_USE: "input",
    buckets.INPUT_CACHED: "cache_read",
    buckets.INPUT_CACHED_AUDIO: "cache_read_audio",
    buckets.OUTPUT: "output",
    buckets.OUTPUT_REASONING: "output_reasoning",
    buckets.OUTPUT_IMAGE: "output_image",
    buckets.OUTPUT_AUDIO: "output_audio",
}
"""Which price each token bucket is billed at."""


_PER_MINUTE_KINDS: Final = ("input_audio_per_minute", "output_audio_per_minute")


def _whole(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN, context=_EXACT))


def effective_prices(explicit: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The prices of every kind, defaults filled in from the explicit ones."""
    prices = dict(explicit)
    given_input = explicit.get("input")
    given_output = explicit.get("output")
    if given_input is not None:
        for kind in ("input_image", "input_video", "input_audio"):
            prices.setdefault(kind, given_input)
        # No cache price: a cache read is billed like fresh input (never under-billed).
        prices.setdefault("cache_read", given_input)
    if "cache_read_audio" not in prices:
        audio_cache = explicit.get("cache_read", prices.get("input_audio"))
        if audio_cache is not None:
            prices["cache_read_audio"] = audio_cache
    if given_output is not None:
        for kind in ("output_reasoning", "output_image", "output_audio"):
            prices.setdefault(kind, given_output)
    return prices


def apply_rule(prices: Mapping[str, Decimal], rule: ServiceTierRule | None) -> dict[str, Decimal]:
    """``prices`` changed by a service-tier rule (multiplier, then explicit prices)."""
    if rule is None:
        return dict(prices)
    result = {
        kind: price if kind in rule.unchanged else _EXACT.multiply(price, rule.multiplier)
        for kind, price in prices.items()
    }
    result.update(rule.prices)
    return result


@dataclass(frozen=True)
class Rates:
    """Resolved prices of one period for one service tier and one prompt-size tier."""

    prices: Mapping[str, Decimal]
    """USD prices by kind, defaults filled in (for display)."""
    per_token: Mapping[str, int]
    """Femto-USD per token by token bucket; a bucket without a price is absent."""
    by_minute: bool = False
    """Whether audio has a per-minute price (else every token bucket is priced per token)."""

    @classmethod
    def resolve(cls, prices: Mapping[str, Decimal]) -> Rates:
        per_token: dict[str, int] = {}
        for bucket, kind in BUCKET_KIND.items():
            price = prices.get(kind)
            if price is not None:
                per_token[bucket] = _whole(_EXACT.multiply(price, _FEMTO_PER_USD_PER_MTOK))
        by_minute = any(kind in prices for kind in _PER_MINUTE_KINDS)
        return cls(prices=dict(prices), per_token=per_token, by_minute=by_minute)


def resolve_rates(
    base: Mapping[str, Decimal],
    tier_prices: Mapping[str, Decimal] | None,
    rule: ServiceTierRule | None,
) -> Rates:
    """Rates for a period's ``base`` prices, one prompt-size tier and one service-tier rule."""
    explicit = {kind: price for kind, price in base.items() if kind in PRICE_KINDS}
    if tier_prices:
        explicit.update({k: v for k, v in tier_prices.items() if k in TOKEN_PRICE_KINDS})
    # The rule changes the prices the table gives; defaults are derived afterwards, so a
    # price the table leaves to its default (TTS cache reads = input) follows its source.
    return Rates.resolve(effective_prices(apply_rule(explicit, rule)))


def _seconds(value: float) -> Decimal:
    # repr() gives the shortest decimal that round-trips: 12.3 stays 12.3, not 12.30000000000000071.
    return Decimal(repr(float(value)))


def _per_minute(price: Decimal, seconds: Decimal) -> int:
    return _whole(
        _EXACT.divide(_EXACT.multiply(_EXACT.multiply(price, FEMTO_PER_USD), seconds), 60)
    )


class Priced(NamedTuple):
    """The outcome of pricing one usage with one set of rates."""

    femto: dict[str, int]
    details: dict[str, int]
    missing: tuple[str, ...]


def bills_audio_seconds(rates: Rates, usage: Usage) -> bool:
    """Whether a per-minute audio price in ``rates`` bills audio seconds ``usage`` measured
    (a Live turn can report seconds of audio and no tokens)."""
    prices = rates.prices
    return ((usage.audio_input_seconds or 0) > 0 and "input_audio_per_minute" in prices) or (
        (usage.audio_output_seconds or 0) > 0 and "output_audio_per_minute" in prices
    )


def price_usage(
    rates: Rates,
    tokens: list[tuple[str, int]],
    usage: Usage,
    audio_tokens_per_second: Decimal,
) -> Priced:
    """Femto-USD and units per bucket for ``tokens`` (from :func:`split_tokens`) and units.

    A per-minute audio price replaces the audio token price: it uses the measured seconds
    when the usage has them, else the audio tokens at ``audio_tokens_per_second``.
    """
    femto: dict[str, int] = {}
    details: dict[str, int] = {}
    missing: list[str] = []
    per_token = rates.per_token
    if not rates.by_minute and not usage.output_images and not usage.output_video_seconds:
        # The usual case (every priced span): tokens at their per-token rates, nothing else.
        for bucket, count in tokens:
            rate = per_token.get(bucket)
            if rate is None:
                missing.append(bucket)
            else:
                femto[bucket] = rate * count
                details[bucket] = count
        return Priced(femto, details, tuple(missing))
    prices = rates.prices
    for bucket, count in tokens:
        minute_price = None
        seconds = None
        if bucket == buckets.INPUT_AUDIO:
            minute_price = prices.get("input_audio_per_minute")
            seconds = usage.audio_input_seconds
        elif bucket == buckets.OUTPUT_AUDIO:
            minute_price = prices.get("output_audio_per_minute")
            seconds = usage.audio_output_seconds
        if minute_price is not None:
            measured = (
                _seconds(seconds)
                if seconds is not None and seconds >= 0
                else _EXACT.divide(count, audio_tokens_per_second)
            )
            femto[bucket] = _per_minute(minute_price, measured)
        else:
            rate = per_token.get(bucket)
            if rate is None:
                missing.append(bucket)
                continue
            femto[bucket] = rate * count
        details[bucket] = count
    # Audio measured but not reported as tokens: a per-minute price still bills the seconds.
    for bucket, seconds, kind in (
        (buckets.INPUT_AUDIO, usage.audio_input_seconds, "input_audio_per_minute"),
        (buckets.OUTPUT_AUDIO, usage.audio_output_seconds, "output_audio_per_minute"),
    ):
        minute_price = prices.get(kind)
        if minute_price is not None and bucket not in details and seconds and seconds > 0:
            femto[bucket] = _per_minute(minute_price, _seconds(seconds))
            details[bucket] = 0
    for bucket, units in buckets.unit_buckets(usage):
        kind = "per_image" if bucket == buckets.OUTPUT_IMAGE_COUNT else "per_video_second"
        unit_price = prices.get(kind)
        if unit_price is None:
            missing.append(bucket)
            continue
        # Video is billed by the exact seconds; its bucket shows them rounded.
        amount = (
            _seconds(usage.output_video_seconds)
            if bucket == buckets.OUTPUT_VIDEO_SECONDS
            else Decimal(units)
        )
        femto[bucket] = _whole(_EXACT.multiply(_EXACT.multiply(unit_price, FEMTO_PER_USD), amount))
        details[bucket] = units
    return Priced(femto, details, tuple(missing))
