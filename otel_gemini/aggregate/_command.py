"""``otel-gemini costs``: what Gemini calls cost (and how slow they were), in the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from otel_gemini._text_table import text_table

HELP = "Print cost and tokens by user / day / model (or latency percentiles) from the cost store."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " Reads the local cost store (--db, default OTEL_GEMINI_COST_DB) or, with "
        "--source langfuse, Langfuse's Metrics API (LANGFUSE_* variables); falls back to the "
        "local store when Langfuse cannot answer, and says so."
    )
    parser.add_argument(
        "--by",
        default="model",
        help="group by any of user, day, model, provider, session, comma-separated "
        "(default: model; '' for the total only)",
    )
    parser.add_argument("--from", dest="start", help="ISO date or date-time (default: 30 days ago)")
    parser.add_argument("--to", dest="end", help="ISO date or date-time, exclusive (default: now)")
    parser.add_argument("--tz", help="time zone of days and of dates without one (default UTC)")
    parser.add_argument("--source", choices=("local", "langfuse"), help="default: local")
    parser.add_argument("--db", help="the cost store (default: OTEL_GEMINI_COST_DB or its default)")
    for name in ("user", "session", "model", "provider"):
        parser.add_argument(f"--{name}", help=f"only this {name}")
    parser.add_argument(
        "--top",
        help="only the N most costly groups, costliest first (the total still covers all)",
    )
    parser.add_argument(
        "--latency",
        action="store_true",
        help="latency and time-to-first-token percentiles and error rates instead "
        "(--by: model, provider, day)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def run(args: argparse.Namespace) -> int:
    from otel_gemini.aggregate import (
        CostAnswers,
        CostStoreError,
        QueryError,
        SourceUnavailable,
        parse_cost_query,
        parse_latency_query,
    )

    parameters = {
        "group_by": args.by if not args.latency or args.by != "" else "model",
        "from": args.start,
        "to": args.end,
        "tz": args.tz,
        "user": args.user,
        "session": args.session,
        "model": args.model,
        "provider": args.provider,
        "top": args.top,
    }
    given = {key: value for key, value in parameters.items() if value is not None}
    if args.latency and args.top is not None:
        print("otel-gemini costs: --top: ranks costs; leave it out with --latency", file=sys.stderr)
        return 2
    answers = CostAnswers.from_env(args.db, default_source=args.source)
    try:
        now = datetime.now(timezone.utc)
        report: Any
        if args.latency:
            report = answers.latency(parse_latency_query(given, now), args.source)
        else:
            report = answers.costs(parse_cost_query(given, now), args.source)
    except QueryError as error:
        option = {"group_by": "by", "from": "from", "to": "to"}.get(error.parameter)
        print(
            f"otel-gemini costs: --{option or error.parameter}: {error.message}",
            file=sys.stderr,
        )
        return 2
    except (SourceUnavailable, CostStoreError) as error:
        print(f"otel-gemini costs: {error}", file=sys.stderr)
        return 1
    finally:
        answers.close()
    document = report.to_dict()
    if args.json:
        print(json.dumps(document, indent=2))
    elif args.latency:
        print_latency(document)
    else:
        print_costs(document)
    return 0


def _header(document: dict[str, Any]) -> str:
    line = f"{document['from']} .. {document['to']} ({document['tz']}), source {document['source']}"
    if document.get("stale"):
        line += f" (STALE: {document.get('stale_reason')})"
    if document.get("truncated"):
        line += " (truncated by Langfuse's row limit)"
    return line


def _usd(value: str | None) -> str:
    return "unknown" if value is None else f"${value}"


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def print_costs(document: dict[str, Any]) -> None:
    """The cost report as a table, with its total."""
    keys: list[str] = document["group_by"]
    headers = [*keys, "cost (USD)", "input tok", "output tok", "requests", "errors"]
    rows: list[list[str]] = []
    for group in [*document["groups"], {**document["total"], **dict.fromkeys(keys, "")}]:
        cost = _usd(group["cost"])
        if group.get("unpriced_requests"):
            cost += f" (+{group['unpriced_requests']} unpriced)"
        rows.append(
            [
                *(str(group[key]) if group[key] is not None else "(none)" for key in keys),
                cost,
                _count(group["input_tokens"]),
                _count(group["output_tokens"]),
                _count(group["requests"]),
                _count(group["errors"]),
            ]
        )
    if keys:
        rows[-1][0] = "TOTAL"
    else:
        headers.insert(0, "")
        rows = [["TOTAL", *rows[-1]]]
    print(_header(document))
    print(text_table(headers, rows, max(1, len(keys))))
    if document.get("top") is not None and document["group_count"] > len(document["groups"]):
        print(f"(the {document['top']} most costly of {document['group_count']:,} groups)")
    _print_dropped(document)


def _print_dropped(document: dict[str, Any]) -> None:
    """The line under a table whose window had drops: its numbers are a lower bound."""
    dropped = document.get("dropped")
    if dropped:
        print(
            f"WARNING: the cost store dropped {dropped:,} generation(s) in this window "
            "(see `otel-gemini health` and the log); the figures above miss them"
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_latency(document: dict[str, Any]) -> None:
    """The latency report as a table (milliseconds)."""
    keys: list[str] = document["group_by"]
    headers = [
        *keys,
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "ttft p50",
        "ttft p95",
        "ttft p99",
    ]
    rows = []
    for group in document["groups"]:
        latency, ttft = group["latency_ms"], group["time_to_first_token_ms"]
        rate = group["error_rate"]
        errors = _count(group["errors"]) + (f" ({rate:.1%})" if rate else "")
        rows.append(
            [
                *(str(group[key]) if group[key] is not None else "(none)" for key in keys),
                _count(group["requests"]),
                errors,
                *(_ms(latency[p]) for p in ("p50", "p95", "p99")),
                *(_ms(ttft[p]) for p in ("p50", "p95", "p99")),
            ]
        )
    print(_header(document))
    print(text_table(headers, rows, len(keys)))
    _print_dropped(document)
