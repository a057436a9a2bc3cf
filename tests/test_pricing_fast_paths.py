"""The per-span fast paths of pricing and of the store row give exactly what the general
code gives: the usual case takes fewer Python-level steps, never a different number."""

from __future__ import annotations

import dataclasses
import math
from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_gemini._limits import (
    MAX_SECONDS_PER_REQUEST,
    MAX_TOKENS_PER_REQUEST,
    MAX_UNITS_PER_REQUEST,
)
from otel_gemini._money import cost_details_json
from otel_gemini.aggregate._rows import _tags
from otel_gemini.pricing import PriceTable, Usage
from otel_gemini.pricing._buckets import split_tokens
from otel_gemini.pricing._rates import price_usage
from otel_gemini.pricing._usage import COUNT_FIELDS, SECONDS_FIELDS, implausible_reason

TABLE = PriceTable.default()
_IMAGES = Usage._fields.index("output_images")


def _implausible_field_by_field(usage: Usage) -> bool:
    """The rule written out plainly (the oracle): every count a whole number in range (a
    float that is whole counts), every measured second in range."""
    for index, name in enumerate((*COUNT_FIELDS, "output_images")):
        value = usage[index if index < len(COUNT_FIELDS) else _IMAGES]
        limit = MAX_TOKENS_PER_REQUEST if name.endswith("_tokens") else MAX_UNITS_PER_REQUEST
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return True
        if not 0 <= value <= limit:
            return True
    for name in SECONDS_FIELDS:
        seconds = getattr(usage, name)
        if seconds is not None and not (
            isinstance(seconds, (int, float)) and 0 <= seconds <= MAX_SECONDS_PER_REQUEST
        ):
            return True
    return False


count_values = st.one_of(
    st.integers(-5, 2_000_000),
    st.integers(MAX_TOKENS_PER_REQUEST - 2, MAX_TOKENS_PER_REQUEST + 2),
    st.sampled_from([True, False, 3.0, 2.5, -0.0, math.inf, math.nan, "7", None]),
)
seconds_values = st.one_of(
    st.none(),
    st.floats(-1, MAX_SECONDS_PER_REQUEST + 1),
    st.sampled_from([0, 0.0, 12, math.inf, math.nan, "3"]),
)


@st.composite
def any_usages(draw: st.DrawFn) -> Usage:
    """Mostly plausible usages (the fast path), with now and then one odd value."""
    counts = [draw(st.integers(0, 40_000)) for _ in COUNT_FIELDS]
    if draw(st.booleans()):
        counts[draw(st.integers(0, len(COUNT_FIELDS) - 1))] = draw(count_values)
    images = draw(st.sampled_from([0, 0, 3, -1, 2.0, True, MAX_UNITS_PER_REQUEST + 1]))
    return Usage(
        *counts,
        audio_input_seconds=draw(seconds_values),
        audio_output_seconds=draw(seconds_values),
        output_images=images,
        output_video_seconds=draw(st.sampled_from([0.0, 0, 4.5, -1.0, math.nan])),
    )


@settings(max_examples=500, deadline=None)
@given(usage=any_usages())
def test_implausible_usage_is_found_whatever_path_it_takes(usage: Usage) -> None:
    assert (implausible_reason(usage) is not None) == _implausible_field_by_field(usage)


def test_the_usual_usage_is_plausible_and_a_bool_or_a_second_too_many_is_not() -> None:
    assert implausible_reason(Usage(input_tokens=2, output_tokens=3)) is None
    assert implausible_reason(Usage(input_tokens=True)) == "input_tokens bool is not a count"
    assert implausible_reason(Usage(audio_input_seconds=-1.0)) == (
        f"audio_input_seconds -1.0 is not 0 to {MAX_SECONDS_PER_REQUEST:.0f} s"
    )
    assert implausible_reason(Usage(input_tokens=10.0, output_tokens=2)) is None


plausible_usages = st.builds(
    Usage,
    **{name: st.integers(0, 3_000_000) for name in COUNT_FIELDS},
    output_images=st.sampled_from([0, 0, 2]),
    output_video_seconds=st.sampled_from([0.0, 0.0, 8.4]),
)
ENTRIES = TABLE.entries()


@settings(max_examples=400, deadline=None)
@given(
    usage=plausible_usages,
    entry=st.integers(0, len(ENTRIES) - 1),
    day=st.dates(date(2024, 1, 1), date(2028, 1, 1)),
    tier=st.sampled_from(["standard", "batch", "flex", "priority"]),
)
def test_per_token_rates_price_alike_on_the_fast_and_the_general_path(
    usage: Usage, entry: int, day: date, tier: str
) -> None:
    period = ENTRIES[entry].period_at((day - date(1970, 1, 1)).days * 86_400 * 10**9)
    tokens, prompt_tokens, _ = split_tokens(usage)
    rates = period.rates_for(tier, prompt_tokens)
    per_second = TABLE.audio_tokens_per_second(live=False)

    general = dataclasses.replace(rates, by_minute=True)  # forces the general path

    assert price_usage(rates, tokens, usage, per_second) == price_usage(
        general, tokens, usage, per_second
    )


def test_a_rate_set_knows_whether_audio_is_priced_by_the_minute() -> None:
    by_minute = [
        period.rates_for("standard", 0).by_minute for entry in ENTRIES for period in entry.periods
    ]
    per_minute_prices = [
        "input_audio_per_minute" in period.rates_for("standard", 0).prices
        or "output_audio_per_minute" in period.rates_for("standard", 0).prices
        for entry in ENTRIES
        for period in entry.periods
    ]
    assert by_minute == per_minute_prices


def test_cost_details_json_writes_exact_decimals_with_the_total() -> None:
    femto = {"input": 600_000_000_000, "output": 7_500_000_000_000, "input_cached": 1}
    assert cost_details_json(femto, 8_100_000_000_001) == (
        '{"input":0.0006,"output":0.0075,"input_cached":0.000000000000001,'
        '"total":0.008100000000001}'
    )
    assert cost_details_json({}, 0) == '{"total":0}'


def test_tag_json_is_the_same_made_or_remembered_and_tells_equal_numbers_apart() -> None:
    assert _tags(("bench", "a")) == '["a", "bench"]'
    assert _tags(("bench", "a")) == '["a", "bench"]'  # remembered
    assert _tags(["bench", "a"]) == '["a", "bench"]'
    assert _tags("solo") == '["solo"]'
    assert _tags(()) is None
    assert _tags([]) is None
    assert _tags((1,)) == '["1"]'
    assert _tags((1.0,)) == '["1.0"]'  # equal to (1,) as a key: never taken for it
    assert _tags((True,)) == '["True"]'
