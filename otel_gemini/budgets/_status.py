"""Where each budget stands now: the answer of ``GET /api/observability/budgets`` and
``otel-gemini budgets``, read from the cost store (any process may ask)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from otel_gemini._money import femto_decimal, to_femto, usd_text
from otel_gemini._suppress import untraced
from otel_gemini.aggregate import CostStoreError, dropped_between, open_for_reading, unix_ns
from otel_gemini.budgets import _guard, _ledger
from otel_gemini.budgets._periods import period_of
from otel_gemini.budgets._rules import SCOPE_TAG, SCOPE_TOTAL, AnomalyRule, BudgetRule, BudgetRules

STATUS_OK: Final = "ok"
STATUS_WARNING: Final = "warning"
STATUS_EXCEEDED: Final = "exceeded"


def _text(value: Decimal) -> str:
    return usd_text(value) or "0"


def _entry(rule: BudgetRule, value: str, spend: _ledger.Spend) -> dict[str, Any]:
    limit_femto = to_femto(rule.limit)
    utilization = Decimal(spend.femto) / Decimal(limit_femto)
    crossed = [_text(t) for t in rule.thresholds if spend.femto >= t * limit_femto]
    status = STATUS_OK
    if crossed:
        status = STATUS_EXCEEDED if crossed[-1] == "1" else STATUS_WARNING
    return {
        "scope_value": value,
        "spend_usd": _text(femto_decimal(spend.femto)),
        "limit_usd": _text(rule.limit),
        "utilization": _text(utilization.quantize(Decimal("0.0001"))),
        "thresholds_crossed": crossed,
        "status": status,
        "requests": spend.requests,
        "unpriced_requests": spend.unpriced,
    }


def _budget(connection: sqlite3.Connection, rule: BudgetRule, now_ns: int) -> dict[str, Any]:
    period = period_of(rule.period, rule.zone, now_ns)
    spend = _ledger.period_spend(connection, rule, period)
    single = rule.scope in (SCOPE_TOTAL, SCOPE_TAG)
    entries = [_entry(rule, value, found) for value, found in spend.items()]
    if single and not entries:
        value = rule.tag if rule.scope == SCOPE_TAG and rule.tag else _ledger.TOTAL_VALUE
        entries = [_entry(rule, value, _ledger.NO_SPEND)]
    entries.sort(key=lambda entry: (-Decimal(entry["spend_usd"]), entry["scope_value"]))
    highest = entries[0]["utilization"] if entries else "0"
    shown = entries if single else [e for e in entries if e["status"] != STATUS_OK]
    return {
        "rule": rule.name,
        "kind": "budget",
        "scope": rule.scope,
        "tag": rule.tag,
        "period": rule.period,
        "timezone": rule.timezone,
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "limit_usd": _text(rule.limit),
        "warn_at": [_text(t) for t in rule.warn_at],
        "enforce": rule.enforce,
        "scope_values_with_spend": len(spend),
        "highest_utilization": highest,
        "entries": shown,
        # Generations the store could not keep in this period: the spend is then a lower bound.
        "dropped": dropped_between(connection, period.start_ns, period.end_ns),
    }


def _anomaly(connection: sqlite3.Connection, rule: AnomalyRule, now_ns: int) -> dict[str, Any]:
    recent, baseline = _ledger.anomaly_costs(connection, rule, now_ns)
    entries = []
    for value in sorted(set(recent) | set(baseline)):
        recent_femto, recent_requests = recent.get(value, (0, 0))
        base_femto, base_requests = baseline.get(value, (0, 0))
        entry: dict[str, Any] = {
            "scope_value": value,
            "recent_requests": recent_requests,
            "baseline_requests": base_requests,
            "recent_cost_per_request": None,
            "baseline_cost_per_request": None,
            "ratio": None,
            "status": "insufficient_data",
        }
        if recent_requests:
            recent_cpr = femto_decimal(recent_femto) / recent_requests
            entry["recent_cost_per_request"] = _text(recent_cpr.quantize(Decimal("1E-15")))
        if base_requests:
            base_cpr = femto_decimal(base_femto) / base_requests
            entry["baseline_cost_per_request"] = _text(base_cpr.quantize(Decimal("1E-15")))
        anomalous = rule.anomalous(recent_femto, recent_requests, base_femto, base_requests)
        if anomalous is not None:
            ratio = (Decimal(recent_femto) * base_requests) / (
                Decimal(base_femto) * recent_requests
            )
            entry["ratio"] = _text(ratio.quantize(Decimal("0.01")))
            entry["status"] = "anomalous" if anomalous else STATUS_OK
        entries.append(entry)
    now = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
    (recent_start, _), (baseline_start, _) = _ledger.anomaly_windows(now_ns)
    return {
        "rule": rule.name,
        "kind": "anomaly",
        "scope": rule.by,
        "ratio": _text(rule.ratio),
        "min_requests": rule.min_requests,
        "recent_window_start": datetime.fromtimestamp(recent_start / 1e9, timezone.utc).isoformat(),
        "baseline_window_start": datetime.fromtimestamp(
            baseline_start / 1e9, timezone.utc
        ).isoformat(),
        "now": now.isoformat(),
        "entries": entries,
    }


@untraced
def budget_status(
    rules: BudgetRules, store_path: Path, now: datetime | None = None
) -> dict[str, Any]:
    """Each rule's current period, and each scope value at or over a threshold (total and
    tag rules: their one value), with exact decimal strings for money. Raises
    ``CostStoreError`` when there is no store to read."""
    moment = now or datetime.now(timezone.utc)
    now_ns = unix_ns(moment)
    connection = open_for_reading(store_path)
    try:
        # One snapshot for every rule (a model rule reads the rollups and its alias rows
        # apart: a row written between two reads would count under one name only).
        connection.execute("BEGIN")
        budgets = [_budget(connection, rule, now_ns) for rule in rules.budgets]
        anomalies = [_anomaly(connection, rule, now_ns) for rule in rules.anomalies]
    except sqlite3.Error as error:  # busy, or a file that is no store of ours: a 503, not a 500
        raise CostStoreError(f"cannot read the cost store {str(store_path)!r}: {error}") from None
    finally:
        connection.close()
    exhausted = _guard.exhausted_scopes()
    return {
        "generated_at": moment.astimezone(timezone.utc).isoformat(),
        "rules_file": rules.source,
        "budgets": budgets,
        "anomalies": anomalies,
        "enforcement": {
            "enabled": rules.enforced,
            # A closed model's aliases share its closure: each closure is listed once.
            "exhausted_in_this_process": [
                {"rule": e.rule, "scope": e.scope, "scope_value": e.scope_value}
                for e in dict.fromkeys(exhausted.values())
            ],
        },
    }
