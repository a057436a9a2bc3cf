"""``otel-gemini budgets``: where each budget stands, from the cost store."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

HELP = "Print each budget rule's spend, limit and utilization this period (and anomalies)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " Reads the rules (--rules, default OTEL_GEMINI_BUDGETS) and the local cost "
        "store (--db, default OTEL_GEMINI_COST_DB). With --check, only validates the rules."
    )
    parser.add_argument("--rules", help="the budget rules (TOML; default: OTEL_GEMINI_BUDGETS)")
    parser.add_argument("--db", help="the cost store (default: OTEL_GEMINI_COST_DB or its default)")
    parser.add_argument("--check", action="store_true", help="validate the rules and exit")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


def run(args: argparse.Namespace) -> int:
    from otel_gemini._command_errors import CommandError
    from otel_gemini.aggregate import default_cost_db
    from otel_gemini.budgets import ENV_BUDGETS, BudgetRules, budget_status

    rules = BudgetRules.load(args.rules) if args.rules else BudgetRules.from_env(os.environ)
    if rules is None:
        raise CommandError(f"no budget rules: give --rules or set {ENV_BUDGETS}")
    if args.check:
        print(
            f"{rules.source}: {len(rules.budgets)} budget rule(s), {len(rules.anomalies)} "
            f"anomaly rule(s){', enforcement on' if rules.enforced else ''}; valid"
        )
        return 0
    db = Path(args.db).expanduser() if args.db else default_cost_db(os.environ)
    document = budget_status(rules, db)  # CostStoreError: exit 1, one line
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        print_status(document)
    return 0


def print_status(document: dict[str, Any]) -> None:
    """The budgets as tables: one line per rule, then each scope value over a threshold."""
    from otel_gemini._text_table import text_table

    rows = []
    for budget in document["budgets"]:
        scope = budget["scope"] + (f" {budget['tag']!r}" if budget.get("tag") else "")
        entries = budget["entries"]
        if budget["scope"] in ("total", "tag"):
            entry = entries[0]
            spend, utilization, status = entry["spend_usd"], entry["utilization"], entry["status"]
        else:
            spend = "-"
            utilization = budget["highest_utilization"]
            over = len(entries)
            status = f"{over} over a threshold" if over else "ok"
        rows.append(
            [
                budget["rule"],
                scope,
                f"{budget['period']} ({budget['timezone']})",
                budget["period_end"],
                f"${spend}" if spend != "-" else spend,
                f"${budget['limit_usd']}",
                f"{float(utilization) * 100:.1f} %",
                status + (" (enforced)" if budget["enforce"] else ""),
            ]
        )
    headers = ["rule", "scope", "period", "ends", "spend", "limit", "used", "status"]
    print(text_table(headers, rows, 4) if rows else "no budget rules")
    over_rows = [
        [
            budget["rule"],
            entry["scope_value"],
            f"${entry['spend_usd']}",
            f"{float(entry['utilization']) * 100:.1f} %",
            entry["status"],
            str(entry["requests"])
            + (f" (+{entry['unpriced_requests']} unpriced)" if entry["unpriced_requests"] else ""),
        ]
        for budget in document["budgets"]
        if budget["scope"] not in ("total", "tag")
        for entry in budget["entries"]
    ]
    if over_rows:
        print()
        print(
            text_table(["rule", "scope value", "spend", "used", "status", "requests"], over_rows, 2)
        )
    anomaly_rows = [
        [
            anomaly["rule"],
            f"{anomaly['scope']} {entry['scope_value']}",
            _usd(entry["recent_cost_per_request"]),
            _usd(entry["baseline_cost_per_request"]),
            entry["ratio"] or "-",
            entry["status"],
        ]
        for anomaly in document["anomalies"]
        for entry in anomaly["entries"]
    ]
    if anomaly_rows:
        print()
        headers = ["anomaly", "of", "last hour $/req", "7 days $/req", "ratio", "status"]
        print(text_table(headers, anomaly_rows, 2))


def _usd(value: str | None) -> str:
    return "-" if value is None else f"${value}"
