"""``otel-gemini collector-config``: configuration generated for the OpenTelemetry Collector."""

from __future__ import annotations

import argparse
import sys

HELP = "Generate OpenTelemetry Collector configuration (the Gemini cost as OTTL statements)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    ottl = sub.add_parser(
        "ottl",
        help="transform-processor statements that price Gemini spans inside the Collector",
        description="Print a Collector config fragment defining the transform processor "
        "'transform/gemini_cost', whose OTTL statements price Gemini spans exactly like "
        "otel-gemini's CostSpanProcessor, from the shipped price table (with "
        "OTEL_GEMINI_PRICES or --prices merged in). Load it next to "
        "collector-config/direct.yaml: otelcol --config direct.yaml --config gemini-cost.yaml",
    )
    ottl.add_argument("--prices", metavar="FILE", help="a price override file to merge in")
    ottl.add_argument(
        "--processor-name",
        default="transform/gemini_cost",
        help="the processor's name in the config (default transform/gemini_cost)",
    )
    ottl.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def run(args: argparse.Namespace) -> int:
    from otel_gemini._command_errors import CommandError
    from otel_gemini.collector._ottl import cost_statements
    from otel_gemini.pricing import PriceTable, PriceTableError

    try:
        table = PriceTable.load(args.prices) if args.prices else PriceTable.from_env()
        text = cost_statements(table).to_yaml(args.processor_name)
    except PriceTableError:
        raise  # one line naming the file, exit 2 (cli.main)
    except ValueError as error:
        raise CommandError(str(error)) from None
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        sys.stdout.write(text)
    return 0
