"""``otel-gemini prices``: show the price table, or check an override file."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, TextIO

from otel_gemini.pricing._table_file import INFO_PRICE_KINDS, TOKEN_PRICE_KINDS, UNIT_PRICE_KINDS

if TYPE_CHECKING:
    from otel_gemini.pricing._price_table import PricedModel

HELP = "Show the Gemini price table (or one model's dated prices), or check an override file."

_PRICE_ORDER = (*TOKEN_PRICE_KINDS, *INFO_PRICE_KINDS, *UNIT_PRICE_KINDS)
_UNITS = {
    "cache_storage": "/1M tokens/hour",
    "per_image": "/image",
    "per_video_second": "/second",
    "input_audio_per_minute": "/minute",
    "output_audio_per_minute": "/minute",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        nargs="?",
        help="a model name (any form: models/gemini-2.5-flash, gemini-2.0-flash-001…): "
        "show all its dated prices",
    )
    parser.add_argument(
        "--check",
        metavar="FILE",
        help="validate an override file (exit status 1 and every problem if it is invalid)",
    )
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="merge this override file over the shipped table (default: $OTEL_GEMINI_PRICES)",
    )


def _amount(price: Decimal) -> str:
    return format(price.normalize(), "f")


def _price_list(prices: Mapping[str, Decimal], kinds: Iterable[str] = _PRICE_ORDER) -> str:
    parts = [
        f"{kind} {_amount(prices[kind])}{_UNITS.get(kind, '')}" for kind in kinds if kind in prices
    ]
    return ", ".join(parts) if parts else "(no prices)"


def _names(model: PricedModel) -> str:
    spec = model.spec
    parts = [
        *spec.names,
        *(f"{prefix}*" for prefix in spec.prefixes),
        *(f"/{pattern}/" for pattern in spec.patterns),
    ]
    return ", ".join(parts)


def _print_model(model: PricedModel, out: TextIO, *, all_periods: bool) -> None:
    live = " (Live API)" if model.live else ""
    print(f"{model.id}{live}: {_names(model)}", file=out)
    periods = model.periods
    if not all_periods:  # the period in effect now and any announced after it
        current = model.period_at(time.time_ns())
        periods = periods[periods.index(current) :]
    for period in periods:
        spec = period.spec
        since = f"from {spec.starts}" if spec.starts else "since release"
        print(f"  {since}: {_price_list(spec.prices)}", file=out)
        for tier in spec.tiers or ():
            print(f"    prompt > {tier.above} tokens: {_price_list(tier.prices)}", file=out)
        for name, rule in sorted(spec.service_tiers.items()):
            explicit = f"; {_price_list(rule.prices)}" if rule.prices else ""
            kept = f" (not {', '.join(sorted(rule.unchanged))})" if rule.unchanged else ""
            print(f"    {name}: x{_amount(rule.multiplier)}{kept}{explicit}", file=out)
        if all_periods:
            print(f"    source: {spec.source or '(none)'}", file=out)
            if spec.note:
                print(f"    note: {spec.note}", file=out)


def run(args: argparse.Namespace) -> int:
    from otel_gemini.pricing._price_table import PriceTable
    from otel_gemini.pricing._table_file import PriceTableError

    out = sys.stdout
    if args.check:
        try:
            table = PriceTable.load(args.check)
        except PriceTableError as error:
            print(f"{args.check}: invalid", file=sys.stderr)
            for problem in error.problems:
                print(f"  {problem}", file=sys.stderr)
            return 1
        print(f"{args.check}: OK (price table version {table.version})", file=out)
        return 0
    # A bad --prices or OTEL_GEMINI_PRICES raises PriceTableError: one line, exit 2 (cli.main).
    table = PriceTable.load(args.prices) if args.prices else PriceTable.from_env()
    spec = table._spec
    if args.model:
        found = table.entry(args.model)
        if found is None:
            near = table.suggestions(args.model)
            hint = f"; did you mean {' or '.join(near)}?" if near else ""
            print(
                f"no price for {args.model!r} in price table {table.version}{hint}",
                file=sys.stderr,
            )
            return 1
        print(f"price table {table.version}; USD per 1M tokens unless noted", file=out)
        _print_model(found, out, all_periods=True)
        return 0
    print(
        f"price table {table.version} ({', '.join(table.files)}); USD per 1M tokens unless "
        "noted; current prices (otel-gemini prices MODEL shows a model's history)",
        file=out,
    )
    rules = ", ".join(
        f"{name} x{_amount(rule.multiplier)}" for name, rule in sorted(spec.service_tiers.items())
    )
    print(
        f"service tiers: {rules}; audio tokens per second: "
        f"{spec.audio_tokens_per_second} (Live {spec.live_audio_tokens_per_second})",
        file=out,
    )
    for model in table._models:
        _print_model(model, out, all_periods=False)
    return 0
