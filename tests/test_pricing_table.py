"""The shipped price table: exact Decimal costs for every family, tier, kind of usage and date.

Each case states the usage, then the expected cost of every bucket worked out by hand from
the table's per-1M-token prices (noted next to it), and the exact total.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from otel_gemini.pricing import PriceTable, Usage

D = Decimal
NOW = date(2026, 11, 1)

# (id, model, day, usage, context, {bucket: expected USD}, expected total)
CASES: list[tuple[str, str, date, dict[str, Any], dict[str, Any], dict[str, str], str]] = [
    (
        "2.5-pro at the 200k threshold: base tier for every kind",
        "gemini-2.5-pro",
        NOW,
        {
            "input_tokens": 200_000,
            "cache_read_input_tokens": 50_000,
            "output_tokens": 1_000,
            "reasoning_output_tokens": 400,
        },
        {},
        {
            "input": "0.1875",  # 150,000 x 1.25
            "input_cached": "0.00625",  # 50,000 x 0.125
            "output": "0.006",  # 600 x 10
            "output_reasoning": "0.004",  # 400 x 10
        },
        "0.20375",
    ),
    (
        "2.5-pro one token over 200k: the long tier for input, cache and output",
        "gemini-2.5-pro",
        NOW,
        {
            "input_tokens": 200_001,
            "cache_read_input_tokens": 50_000,
            "output_tokens": 1_000,
            "reasoning_output_tokens": 400,
        },
        {},
        {
            "input": "0.3750025",  # 150,001 x 2.50
            "input_cached": "0.0125",  # 50,000 x 0.25
            "output": "0.009",  # 600 x 15
            "output_reasoning": "0.006",  # 400 x 15
        },
        "0.4025025",
    ),
    (
        "2.5-pro before the cache price cut",
        "gemini-2.5-pro",
        date(2025, 6, 30),
        {"input_tokens": 10_000, "cache_read_input_tokens": 8_000, "output_tokens": 100},
        {},
        {"input": "0.0025", "input_cached": "0.00248", "output": "0.001"},  # 0.31 cache
        "0.00598",
    ),
    (
        "2.5-pro long tier before the cache price cut",
        "gemini-2.5-pro",
        date(2025, 10, 31),
        {"input_tokens": 300_000, "cache_read_input_tokens": 100_000},
        {},
        {"input": "0.5", "input_cached": "0.0625"},  # 200,000 x 2.50; 100,000 x 0.625
        "0.5625",
    ),
    (
        "2.5-flash: audio in, cached text and cached audio",
        "gemini-2.5-flash",
        NOW,
        {
            "input_tokens": 1_000,
            "audio_input_tokens": 400,
            "text_input_tokens": 600,
            "cache_read_input_tokens": 300,
            "audio_cache_read_input_tokens": 100,
            "output_tokens": 500,
        },
        {},
        {
            "input": "0.00012",  # 400 x 0.30
            "input_audio": "0.0003",  # 300 x 1.00
            "input_cached": "0.000006",  # 200 x 0.03
            "input_cached_audio": "0.00001",  # 100 x 0.10
            "output": "0.00125",  # 500 x 2.50
        },
        "0.001686",
    ),
    (
        "2.5-flash: thinking and tool-use prompt tokens",
        "gemini-2.5-flash",
        NOW,
        {
            "input_tokens": 1_200,
            "tool_use_prompt_tokens": 200,
            "output_tokens": 900,
            "reasoning_output_tokens": 700,
        },
        {},
        {
            "input": "0.0003",  # 1,000 x 0.30
            "input_tool_use": "0.00006",  # 200 x 0.30
            "output": "0.0005",  # 200 x 2.50
            "output_reasoning": "0.00175",  # 700 x 2.50
        },
        "0.00261",
    ),
    (
        "2.5-flash before the cache cut",
        "gemini-2.5-flash",
        date(2025, 7, 1),
        {"input_tokens": 1_000, "cache_read_input_tokens": 1_000},
        {},
        {"input_cached": "0.000075"},  # 1,000 x 0.075
        "0.000075",
    ),
    (
        "2.5-flash batch: half input and output, cache at the standard rate",
        "gemini-2.5-flash",
        NOW,
        {"input_tokens": 1_000, "cache_read_input_tokens": 400, "output_tokens": 100},
        {"service_tier": "batch"},
        {"input": "0.00009", "input_cached": "0.000012", "output": "0.000125"},
        "0.000227",
    ),
    (
        "2.5-flash flex: like batch",
        "gemini-2.5-flash",
        NOW,
        {"input_tokens": 1_000, "cache_read_input_tokens": 400, "output_tokens": 100},
        {"service_tier": "FLEX"},
        {"input": "0.00009", "input_cached": "0.000012", "output": "0.000125"},
        "0.000227",
    ),
    (
        "2.5-flash priority: 1.8x everything",
        "gemini-2.5-flash",
        NOW,
        {"input_tokens": 1_000, "cache_read_input_tokens": 400, "output_tokens": 100},
        {"service_tier": "priority"},
        {"input": "0.000324", "input_cached": "0.0000216", "output": "0.00045"},
        "0.0007956",
    ),
    (
        "2.5-flash google-genai's default tier, unspecified, prices as standard",
        "gemini-2.5-flash",
        NOW,
        {"input_tokens": 1_000, "output_tokens": 100},
        {"service_tier": "unspecified"},
        {"input": "0.0003", "output": "0.00025"},
        "0.00055",
    ),
    (
        "2.5-flash-lite: audio input",
        "gemini-2.5-flash-lite",
        NOW,
        {"input_tokens": 1_000, "audio_input_tokens": 1_000, "output_tokens": 100},
        {},
        {"input_audio": "0.0003", "output": "0.00004"},
        "0.00034",
    ),
    (
        "2.5-flash preview 05-20: thinking had its own price",
        "gemini-2.5-flash-preview-05-20",
        date(2025, 6, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000, "reasoning_output_tokens": 800},
        {},
        {"input": "0.00015", "output": "0.00012", "output_reasoning": "0.0028"},
        "0.00307",
    ),
    (
        "2.0-flash: audio input",
        "gemini-2.0-flash-001",
        date(2025, 5, 1),
        {"input_tokens": 1_000, "audio_input_tokens": 500, "output_tokens": 100},
        {},
        {"input": "0.00005", "input_audio": "0.00035", "output": "0.00004"},
        "0.00044",
    ),
    (
        "2.0-flash-lite",
        "gemini-2.0-flash-lite",
        date(2025, 5, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.000075", "output": "0.0003"},
        "0.000375",
    ),
    (
        "1.5-flash at the 128k threshold",
        "gemini-1.5-flash-002",
        date(2025, 1, 1),
        {"input_tokens": 128_000, "output_tokens": 1_000},
        {},
        {"input": "0.0096", "output": "0.0003"},
        "0.0099",
    ),
    (
        "1.5-flash over 128k",
        "gemini-1.5-flash-002",
        date(2025, 1, 1),
        {"input_tokens": 128_001, "output_tokens": 1_000},
        {},
        {"input": "0.01920015", "output": "0.0006"},
        "0.01980015",
    ),
    (
        "1.5-flash before the August 2024 cut",
        "gemini-1.5-flash",
        date(2024, 6, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.00035", "output": "0.00105"},
        "0.0014",
    ),
    (
        "1.5-pro the day before its October 2024 cut",
        "gemini-1.5-pro",
        date(2024, 9, 30),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.0035", "output": "0.0105"},
        "0.014",
    ),
    (
        "1.5-pro on the day of the cut",
        "gemini-1.5-pro",
        date(2024, 10, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.00125", "output": "0.005"},
        "0.00625",
    ),
    (
        "1.5-flash-8b",
        "gemini-1.5-flash-8b-001",
        date(2025, 1, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.0000375", "output": "0.00015"},
        "0.0001875",
    ),
    (
        "2.0-flash Live: audio in and out",
        "gemini-2.0-flash-live-001",
        date(2025, 6, 1),
        {
            "input_tokens": 1_200,
            "audio_input_tokens": 1_000,
            "output_tokens": 500,
            "audio_output_tokens": 400,
        },
        {},
        {
            "input": "0.00007",  # 200 x 0.35
            "input_audio": "0.0021",  # 1,000 x 2.10
            "output": "0.00015",  # 100 x 1.50
            "output_audio": "0.0034",  # 400 x 8.50
        },
        "0.00572",
    ),
    (
        "2.5-flash native audio (Live)",
        "gemini-2.5-flash-native-audio-preview-09-2025",
        NOW,
        {
            "input_tokens": 2_000,
            "audio_input_tokens": 1_500,
            "output_tokens": 1_000,
            "audio_output_tokens": 900,
        },
        {},
        {
            "input": "0.00025",  # 500 x 0.50
            "input_audio": "0.0045",  # 1,500 x 3.00
            "output": "0.0002",  # 100 x 2.00
            "output_audio": "0.0108",  # 900 x 12.00
        },
        "0.01575",
    ),
    (
        "3.1-flash Live: audio, video and text",
        "gemini-3.1-flash-live-preview",
        NOW,
        {
            "input_tokens": 2_000,
            "audio_input_tokens": 1_000,
            "video_input_tokens": 500,
            "output_tokens": 1_000,
            "audio_output_tokens": 1_000,
        },
        {},
        {
            "input": "0.000375",  # 500 x 0.75
            "input_video": "0.0005",  # 500 x 1.00
            "input_audio": "0.003",  # 1,000 x 3.00
            "output_audio": "0.012",  # 1,000 x 12.00
        },
        "0.015875",
    ),
    (
        "3-pro-preview over 200k",
        "gemini-3-pro-preview",
        date(2026, 1, 15),
        {"input_tokens": 250_000, "output_tokens": 1_000},
        {},
        {"input": "1", "output": "0.018"},
        "1.018",
    ),
    (
        "3-flash-preview with cache",
        "gemini-3-flash-preview",
        NOW,
        {"input_tokens": 1_000, "cache_read_input_tokens": 500, "output_tokens": 100},
        {},
        {"input": "0.00025", "input_cached": "0.000025", "output": "0.0003"},
        "0.000575",
    ),
    (
        "3.1-pro-preview under 200k",
        "gemini-3.1-pro-preview",
        NOW,
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.002", "output": "0.012"},
        "0.014",
    ),
    (
        "3.1-flash-lite batch halves the cache price too",
        "gemini-3.1-flash-lite",
        NOW,
        {"input_tokens": 2_000, "cache_read_input_tokens": 1_000},
        {"service_tier": "batch"},
        {"input": "0.000125", "input_cached": "0.0000125"},
        "0.0001375",
    ),
    (
        "3.5-flash",
        "gemini-3.5-flash",
        NOW,
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.0015", "output": "0.009"},
        "0.0105",
    ),
    (
        "3.5-flash-lite batch: explicit $0.02 cache price",
        "gemini-3.5-flash-lite",
        NOW,
        {"input_tokens": 2_000, "cache_read_input_tokens": 1_000},
        {"service_tier": "batch"},
        {"input": "0.00015", "input_cached": "0.00002"},
        "0.00017",
    ),
    (
        "3.6-flash introductory price on its last day",
        "gemini-3.6-flash",
        date(2026, 12, 31),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.00075", "output": "0.00375"},
        "0.0045",
    ),
    (
        "3.6-flash from 2027",
        "gemini-3.6-flash",
        date(2027, 1, 1),
        {"input_tokens": 1_000, "output_tokens": 1_000},
        {},
        {"input": "0.0015", "output": "0.0075"},
        "0.009",
    ),
    (
        "3.8-flash batch halves cache too",
        "gemini-3.8-flash",
        NOW,
        {"input_tokens": 2_000, "cache_read_input_tokens": 1_000, "output_tokens": 100},
        {"service_tier": "batch"},
        {"input": "0.000375", "input_cached": "0.0000375", "output": "0.0001875"},
        "0.0006",
    ),
    (
        "2.5-flash-image: image output tokens",
        "gemini-2.5-flash-image",
        date(2026, 1, 1),
        {
            "input_tokens": 100,
            "output_tokens": 1_390,
            "image_output_tokens": 1_290,
            "text_output_tokens": 100,
        },
        {},
        {"input": "0.00003", "output": "0.00025", "output_image": "0.0387"},
        "0.03898",
    ),
    (
        "3-pro-image: a 1K image",
        "gemini-3-pro-image-preview",
        NOW,
        {"input_tokens": 100, "output_tokens": 1_120, "image_output_tokens": 1_120},
        {},
        {"input": "0.0002", "output_image": "0.1344"},
        "0.1346",
    ),
    (
        "3.1-flash-image batch",
        "gemini-3.1-flash-image-preview",
        NOW,
        {"input_tokens": 100, "output_tokens": 1_120, "image_output_tokens": 1_120},
        {"service_tier": "batch"},
        {"input": "0.000025", "output_image": "0.0336"},
        "0.033625",
    ),
    (
        "gemini-embedding-001",
        "gemini-embedding-001",
        NOW,
        {"input_tokens": 1_000},
        {},
        {"input": "0.00015"},
        "0.00015",
    ),
    (
        "gemini-embedding-2: every modality",
        "gemini-embedding-2-preview",
        NOW,
        {
            "input_tokens": 1_000,
            "image_input_tokens": 500,
            "audio_input_tokens": 200,
            "video_input_tokens": 100,
        },
        {},
        {
            "input": "0.00004",  # 200 x 0.20
            "input_image": "0.000225",  # 500 x 0.45
            "input_video": "0.0012",  # 100 x 12
            "input_audio": "0.0013",  # 200 x 6.50
        },
        "0.002765",
    ),
    (
        "2.5-flash TTS",
        "gemini-2.5-flash-preview-tts",
        NOW,
        {"input_tokens": 100, "output_tokens": 1_000, "audio_output_tokens": 1_000},
        {},
        {"input": "0.00005", "output_audio": "0.01"},
        "0.01005",
    ),
    (
        "2.5-pro TTS is not 2.5-pro",
        "gemini-2.5-pro-preview-tts",
        NOW,
        {"input_tokens": 100, "output_tokens": 1_000, "audio_output_tokens": 1_000},
        {},
        {"input": "0.0001", "output_audio": "0.02"},
        "0.0201",
    ),
]

# Per-unit prices: (id, model, day, images or video seconds, expected USD).
UNIT_CASES: list[tuple[str, str, date, int | float, str]] = [
    ("Imagen 4", "imagen-4.0-generate-001", NOW, 2, "0.08"),
    ("Imagen 4 Fast", "imagen-4.0-fast-generate-001", NOW, 3, "0.06"),
    ("Imagen 4 Ultra", "imagen-4.0-ultra-generate-001", NOW, 1, "0.06"),
    ("Imagen 3", "imagen-3.0-generate-002", NOW, 4, "0.12"),
    ("Veo 3 at launch", "veo-3.0-generate-001", date(2025, 8, 1), 8.0, "6"),
    ("Veo 3 after the cut", "veo-3.0-generate-001", date(2025, 9, 9), 8.0, "3.2"),
    ("Veo 3 Fast", "veo-3.0-fast-generate-001", NOW, 8.0, "1.2"),
    ("Veo 2", "veo-2.0-generate-001", NOW, 5.0, "1.75"),
    ("Veo 3.1", "veo-3.1-generate-preview", NOW, 4.5, "1.8"),
]


def _unit_case(name: str, model: str, day: date, units: float, amount: str) -> Any:
    if isinstance(units, int):
        usage, bucket = {"output_images": units}, "output_image_count"
    else:
        usage, bucket = {"output_video_seconds": units}, "output_video_seconds"
    return pytest.param(model, day, usage, {}, {bucket: amount}, amount, id=name)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


@pytest.mark.parametrize(
    ("model", "day", "usage", "context", "breakdown", "total"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES]
    + [_unit_case(*case) for case in UNIT_CASES],
)
def test_exact_cost(
    table: PriceTable,
    model: str,
    day: date,
    usage: dict[str, Any],
    context: dict[str, Any],
    breakdown: dict[str, str],
    total: str,
) -> None:
    cost = table.cost(model, Usage(**usage), day, **context)

    assert cost.status == "priced", cost.reason
    assert dict(cost.breakdown) == {bucket: D(value) for bucket, value in breakdown.items()}
    assert cost.total == D(total)
    assert sum(cost.breakdown.values(), D(0)) == cost.total


def test_usage_details_are_exclusive_buckets_with_the_same_keys(table: PriceTable) -> None:
    usage = Usage(
        input_tokens=1_200,
        cache_read_input_tokens=300,
        audio_input_tokens=400,
        audio_cache_read_input_tokens=100,
        tool_use_prompt_tokens=100,
        output_tokens=900,
        reasoning_output_tokens=700,
    )
    cost = table.cost("gemini-2.5-flash", usage, NOW)

    assert dict(cost.usage_details) == {
        "input": 500,
        "input_audio": 300,
        "input_tool_use": 100,
        "input_cached": 200,
        "input_cached_audio": 100,
        "output": 200,
        "output_reasoning": 700,
    }
    assert sum(cost.usage_details.values()) == usage.input_tokens + usage.output_tokens
    assert set(cost.usage_details) == set(cost.breakdown)
    assert cost.usage_details_json() == (
        '{"input":500,"input_audio":300,"input_tool_use":100,"input_cached":200,'
        '"input_cached_audio":100,"output":200,"output_reasoning":700,"total":2100}'
    )
    assert cost.cost_details_json() == (
        '{"input":0.00015,"input_audio":0.0003,"input_tool_use":0.00003,'
        '"input_cached":0.000006,"input_cached_audio":0.00001,"output":0.0005,'
        '"output_reasoning":0.00175,"total":0.002746}'
    )


@pytest.mark.parametrize(
    "name",
    [
        "gemini-2.5-flash",
        "models/gemini-2.5-flash",
        "MODELS/Gemini-2.5-Flash",
        "publishers/google/models/gemini-2.5-flash",
        "projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-flash@001",
        "google/gemini-2.5-flash",
        "gemini/gemini-2.5-flash",
        " gemini-2.5-flash ",
    ],
)
def test_model_names_are_normalised(table: PriceTable, name: str) -> None:
    assert table.match(name) == "gemini-2.5-flash"


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),  # stable version suffix
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),  # prefix rule
        ("gemini-2.5-pro-preview-tts", "gemini-2.5-pro-preview-tts"),  # exact beats prefix
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("gemini-live-2.5-flash-preview", "gemini-2.5-flash-native-audio"),
        ("gemini-3.5-flash-0615", "gemini-3.5-flash"),  # pattern rule
        ("gemini-3.5-flash-lite-preview-07-2026", "gemini-3.5-flash-lite"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash-preview"),
        ("gemini-2.5-flash-preview-09-2025", "gemini-2.5-flash"),
    ],
)
def test_versioned_and_preview_names(table: PriceTable, name: str, entry: str) -> None:
    assert table.match(name) == entry


@pytest.mark.parametrize(
    "name", ["gpt-4o", "gemini-9-ultra", "", "gemma-3-27b-it", "claude-3-5-sonnet"]
)
def test_unknown_model_is_unknown_never_zero(table: PriceTable, name: str) -> None:
    cost = table.cost(name, Usage(input_tokens=1_000, output_tokens=10), NOW)

    assert cost.status == "unknown_model"
    assert cost.total is None
    assert cost.total_float is None
    assert dict(cost.breakdown) == {}
    assert not cost.is_priced


def test_a_usage_the_entry_has_no_price_for_is_unknown(table: PriceTable) -> None:
    cost = table.cost("imagen-4.0-generate-001", Usage(input_tokens=100), NOW)

    assert cost.status == "unknown_model"
    assert cost.total is None
    assert cost.price_model == "imagen-4"
    assert cost.reason == "imagen-4 has no price for input"


@pytest.mark.parametrize("tier", ["deferred", "gold"])
def test_a_service_tier_without_prices_is_unknown_not_standard(
    table: PriceTable, tier: str
) -> None:
    # The Interactions API's "deferred" tier is discounted: standard would overstate it.
    cost = table.cost("gemini-2.5-flash", Usage(input_tokens=100), NOW, service_tier=tier)

    assert cost.status == "unknown_model"
    assert cost.total is None
    assert cost.service_tier == tier
    assert cost.reason == f"gemini-2.5-flash has no price for service tier {tier!r}"


def test_no_usage(table: PriceTable) -> None:
    cost = table.cost("gemini-2.5-flash", Usage(), NOW)

    assert cost.status == "no_usage"
    assert cost.total == D(0)
    assert cost.cost_details_json() == '{"total":0}'
    assert cost.usage_details_json() == '{"total":0}'


def test_cost_says_how_it_was_priced(table: PriceTable) -> None:
    cost = table.cost(
        "models/gemini-2.5-pro", Usage(input_tokens=1), date(2025, 7, 1), service_tier="batch"
    )

    assert cost.model == "models/gemini-2.5-pro"
    assert cost.price_model == "gemini-2.5-pro"
    assert cost.effective_from == date(2025, 4, 4)
    assert cost.source == "https://ai.google.dev/gemini-api/docs/pricing#gemini-2.5-pro"
    assert cost.service_tier == "batch"
    assert cost.prices_version == table.version == "2026-11-24"
    assert cost.clamped is False


def test_time_of_day_and_time_zone_pick_the_utc_day(table: PriceTable) -> None:
    usage = Usage(input_tokens=1_000)
    last_old = datetime(2024, 9, 30, 23, 59, 59, tzinfo=timezone.utc)
    first_new_elsewhere = datetime(2024, 9, 30, 20, 0, tzinfo=timezone(timedelta(hours=-5)))

    assert table.cost("gemini-1.5-pro", usage, last_old).total == D("0.0035")
    assert table.cost("gemini-1.5-pro", usage, first_new_elsewhere).total == D("0.00125")
    assert table.cost("gemini-1.5-pro", usage, datetime(2024, 10, 1)).total == D("0.00125")


def test_before_the_first_period_the_first_period_applies(table: PriceTable) -> None:
    assert table.cost("gemini-1.5-pro", Usage(input_tokens=1_000), date(2020, 1, 1)).total == D(
        "0.0035"
    )


def test_inconsistent_usage_is_clamped_never_negative(table: PriceTable) -> None:
    usage = Usage(
        input_tokens=100,
        cache_read_input_tokens=150,  # more than all input
        output_tokens=10,
    )
    cost = table.cost("gemini-2.5-flash", usage, NOW)

    assert cost.clamped is True
    assert dict(cost.usage_details) == {"input_cached": 100, "output": 10}
    assert cost.total == D("0.000028")  # 100 x 0.03 + 10 x 2.50
    assert all(value >= 0 for value in cost.breakdown.values())


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        (Usage(input_tokens=10**15), "input_tokens 1000000000000000 exceeds 100,000,000"),
        (Usage(input_tokens=2**63 - 1), "input_tokens 9223372036854775807 exceeds"),
        (Usage(input_tokens=100, output_tokens=10, reasoning_output_tokens=-5), "negative"),
        (Usage(output_tokens=1.5), "output_tokens 1.5 is not a whole number"),  # type: ignore[arg-type]
        (Usage(output_tokens=float("inf")), "output_tokens is inf, not a count"),  # type: ignore[arg-type]
        (Usage(output_images=10**9), "output_images 1000000000 exceeds 100,000"),
        (Usage(output_video_seconds=float("nan")), "output_video_seconds nan is not 0 to"),
    ],
)
def test_implausible_usage_is_never_priced(table: PriceTable, usage: Usage, reason: str) -> None:
    # Counts no Gemini request can bill (issue 22: 2**63 - 1 tokens became $25 trillion)
    # are a broken or hostile sender: no cost, no buckets, the reason.
    cost = table.cost("gemini-2.5-flash", usage, NOW)

    assert cost.status == "implausible_usage"
    assert cost.total is None
    assert dict(cost.usage_details) == {}
    assert cost.reason is not None and reason in cost.reason
    assert cost.price_model == "gemini-2.5-flash"


def test_missing_totals_are_taken_from_their_parts(table: PriceTable) -> None:
    usage = Usage(text_input_tokens=300, audio_input_tokens=200, text_output_tokens=50)
    cost = table.cost("gemini-2.5-flash", usage, NOW)

    assert cost.clamped is False
    assert dict(cost.usage_details) == {"input": 300, "input_audio": 200, "output": 50}


def test_the_decimal_context_of_the_caller_does_not_change_the_cost(table: PriceTable) -> None:
    import decimal

    usage = Usage(input_tokens=123_457, output_tokens=98_765, cache_read_input_tokens=11_111)
    expected = table.cost("gemini-2.5-pro", usage, NOW).total
    with decimal.localcontext() as context:
        context.prec = 3
        assert table.cost("gemini-2.5-pro", usage, NOW).total == expected


def test_every_shipped_period_names_its_source(table: PriceTable) -> None:
    for model in table._models:
        for period in model.periods:
            assert period.spec.source and period.spec.source.startswith("https://"), model.id
