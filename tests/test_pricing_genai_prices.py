"""Cross-check against genai-prices: every model both know costs the same within 1%, or the
difference is listed with its reason in tests/data/genai_prices_exceptions.toml."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_gemini.pricing import PriceTable, Usage

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

genai_prices = pytest.importorskip("genai_prices")
from genai_prices import data_snapshot  # noqa: E402

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
TOLERANCE = Decimal("0.01")
EXCEPTIONS_FILE = Path(__file__).parent / "data" / "genai_prices_exceptions.toml"

# name -> (our usage, genai-prices usage): the same request described to each.
CASES: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "text": (
        {"input_tokens": 10_000, "output_tokens": 1_000},
        {"input_tokens": 10_000, "output_tokens": 1_000},
    ),
    "cached": (
        {"input_tokens": 10_000, "cache_read_input_tokens": 4_000, "output_tokens": 1_000},
        {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 1_000},
    ),
    "audio_in": (
        {"input_tokens": 10_000, "audio_input_tokens": 4_000, "output_tokens": 1_000},
        {"input_tokens": 10_000, "input_audio_tokens": 4_000, "output_tokens": 1_000},
    ),
    "audio_out": (
        {"input_tokens": 1_000, "output_tokens": 1_000, "audio_output_tokens": 800},
        {"input_tokens": 1_000, "output_tokens": 1_000, "output_audio_tokens": 800},
    ),
    "image_out": (
        {"input_tokens": 1_000, "output_tokens": 1_290, "image_output_tokens": 1_290},
        {"input_tokens": 1_000, "output_tokens": 1_290, "output_image_tokens": 1_290},
    ),
    "reasoning": (
        {"input_tokens": 1_000, "output_tokens": 1_000, "reasoning_output_tokens": 800},
        {"input_tokens": 1_000, "output_tokens": 1_000, "output_reasoning_tokens": 800},
    ),
    "long_prompt": (
        {"input_tokens": 300_000, "output_tokens": 1_000},
        {"input_tokens": 300_000, "output_tokens": 1_000},
    ),
}


@dataclass(frozen=True)
class Difference:
    model: str
    name: str
    case: str
    tier: str
    ours: Decimal | None
    theirs: Decimal

    def __str__(self) -> str:
        return (
            f"{self.model} as {self.name!r}, {self.case}, {self.tier}: "
            f"ours {self.ours} vs genai-prices {self.theirs}"
        )


def _without_output(usage: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in usage.items() if "output" not in key}


def _differences() -> tuple[list[Difference], int]:
    table = PriceTable.default()
    google = next(p for p in data_snapshot.get_snapshot().providers if p.id == "google")
    differences: list[Difference] = []
    compared = 0
    for model in table._models:
        prices = model.period_at(int(AT.timestamp()) * 10**9).rates["standard"][0].prices
        for name in (*model.spec.names, *model.spec.prefixes):
            theirs_model = google.find_model(name)
            if theirs_model is None:
                continue
            # genai-prices models batch for some models only; elsewhere it has no batch price.
            batch = any(
                variant.when.get("processing") == "batch"
                for variant in theirs_model.price_variants or ()
            )
            for case, (ours_usage, theirs_usage) in CASES.items():
                if "output" not in prices:  # embeddings: no output to price
                    ours_usage, theirs_usage = (
                        _without_output(ours_usage),
                        _without_output(theirs_usage),
                    )
                for tier in ("standard", "batch") if batch else ("standard",):
                    ours = table.cost(name, Usage(**ours_usage), AT, service_tier=tier).total
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        theirs = theirs_model.calc_price(
                            genai_prices.Usage(**theirs_usage),
                            google,
                            genai_request_timestamp=AT,
                            price_context={"processing": "batch"} if tier == "batch" else None,
                        ).total_price
                    compared += 1
                    if ours is None or abs(ours - theirs) > TOLERANCE * max(ours, theirs):
                        differences.append(Difference(model.id, name, case, tier, ours, theirs))
    return differences, compared


def _exceptions() -> list[dict[str, Any]]:
    with EXCEPTIONS_FILE.open("rb") as file:
        entries: list[dict[str, Any]] = tomllib.load(file)["exceptions"]
    for entry in entries:
        assert entry.get("reason", "").strip(), f"exception without a reason: {entry}"
    return entries


def _covers(entry: dict[str, Any], difference: Difference) -> bool:
    return (
        entry["model"] == difference.model
        and difference.name in entry.get("names", [difference.name])
        and ("*" in entry["cases"] or difference.case in entry["cases"])
    )


def test_prices_agree_with_genai_prices_or_are_documented_exceptions() -> None:
    differences, compared = _differences()
    exceptions = _exceptions()

    assert compared > 200  # most of the table is known to genai-prices
    unexplained = [d for d in differences if not any(_covers(e, d) for e in exceptions)]
    assert not unexplained, "undocumented differences:\n" + "\n".join(map(str, unexplained))
    stale = [e for e in exceptions if not any(_covers(e, d) for d in differences)]
    assert not stale, f"exceptions that no longer match a difference: {stale}"
