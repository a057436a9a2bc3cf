"""``otel-gemini demo``: the whole product on its embedded default (no keys, no network)."""

from __future__ import annotations

import argparse

HELP = "Run a realistic Gemini workload against in-process fakes and print what it cost."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="print only the final report")


def run(args: argparse.Namespace) -> int:
    print("otel-gemini demo: the pipeline is being assembled; nothing to run yet.")
    return 0
