"""Properties of every cost: the breakdown adds up exactly, buckets are exclusive, never < 0."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_gemini.pricing import PriceTable, Usage

TABLE = PriceTable.default()
# A name each entry prices (entry ids are labels, not always model names).
MODELS = [(model.spec.names or model.spec.prefixes)[0] for model in TABLE._models]
TOKEN_MODELS = [
    (model.spec.names or model.spec.prefixes)[0]
    for model in TABLE._models
    if {"input", "output"} <= set(model.periods[-1].rates["standard"][0].prices)
]
counts = st.integers(min_value=0, max_value=3_000_000)


@st.composite
def consistent_usages(draw: st.DrawFn) -> Usage:
    """Usage as Gemini reports it: parts never exceed their totals."""
    text, image, audio, video = (draw(counts) for _ in range(4))
    total_in = text + image + audio + video
    cached_audio = draw(st.integers(0, audio))
    cached = cached_audio + draw(st.integers(0, text + image + video))
    tool = draw(st.integers(0, min(text, total_in - cached)))
    reasoning, text_out, audio_out, image_out = (draw(counts) for _ in range(4))
    return Usage(
        input_tokens=total_in,
        text_input_tokens=text,
        image_input_tokens=image,
        audio_input_tokens=audio,
        video_input_tokens=video,
        cache_read_input_tokens=cached,
        audio_cache_read_input_tokens=cached_audio,
        tool_use_prompt_tokens=tool,
        output_tokens=reasoning + text_out + audio_out + image_out,
        reasoning_output_tokens=reasoning,
        text_output_tokens=text_out + reasoning,
        audio_output_tokens=audio_out,
        image_output_tokens=image_out,
        audio_input_seconds=draw(st.none() | st.floats(0, 10_000, allow_nan=False)),
    )


any_counts = st.integers(min_value=-1_000, max_value=5_000_000)
arbitrary_usages = st.builds(
    Usage,
    input_tokens=any_counts,
    output_tokens=any_counts,
    cache_read_input_tokens=any_counts,
    reasoning_output_tokens=any_counts,
    tool_use_prompt_tokens=any_counts,
    text_input_tokens=any_counts,
    image_input_tokens=any_counts,
    audio_input_tokens=any_counts,
    video_input_tokens=any_counts,
    text_output_tokens=any_counts,
    image_output_tokens=any_counts,
    audio_output_tokens=any_counts,
    audio_cache_read_input_tokens=any_counts,
    output_images=st.integers(0, 50),
    output_video_seconds=st.floats(0, 600, allow_nan=False),
)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2028, 1, 1))
tiers = st.sampled_from([None, "standard", "batch", "flex", "priority"])


@settings(max_examples=400, deadline=None)
@given(usage=arbitrary_usages, model=st.sampled_from(MODELS), day=days, tier=tiers)
def test_breakdown_sums_exactly_to_total(
    usage: Usage, model: str, day: date, tier: str | None
) -> None:
    cost = TABLE.cost(model, usage, day, service_tier=tier)

    if cost.status != "priced":
        assert cost.total is None or cost.total == 0
        return
    assert cost.total is not None
    assert sum(cost.breakdown.values(), Decimal(0)) == cost.total
    assert all(amount >= 0 for amount in cost.breakdown.values())
    assert all(units >= 0 for units in cost.usage_details.values())
    assert set(cost.breakdown) == set(cost.usage_details)
    details = json.loads(cost.cost_details_json(), parse_float=Decimal, parse_int=Decimal)
    assert details.pop("total") == cost.total
    assert details == dict(cost.breakdown)
    assert json.loads(cost.usage_details_json())["total"] == sum(cost.usage_details.values())


@settings(max_examples=300, deadline=None)
@given(usage=consistent_usages(), model=st.sampled_from(TOKEN_MODELS), day=days, tier=tiers)
def test_consistent_usage_is_split_without_loss_or_overlap(
    usage: Usage, model: str, day: date, tier: str | None
) -> None:
    cost = TABLE.cost(model, usage, day, service_tier=tier)

    assert cost.status in ("priced", "no_usage")
    assert cost.clamped is False
    inputs = sum(n for bucket, n in cost.usage_details.items() if bucket.startswith("input"))
    outputs = sum(n for bucket, n in cost.usage_details.items() if bucket.startswith("output"))
    assert inputs == usage.input_tokens
    assert outputs == usage.output_tokens
    assert cost.usage_details.get("input_cached", 0) + cost.usage_details.get(
        "input_cached_audio", 0
    ) == (usage.cache_read_input_tokens)
    assert cost.usage_details.get("output_reasoning", 0) == usage.reasoning_output_tokens
