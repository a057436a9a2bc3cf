"""Budgets and alerts: rules over the cost store's totals, evaluated as priced spans arrive.

``BudgetRules`` reads the TOML rules (``OTEL_GEMINI_BUDGETS`` / ``configure(budgets=...)``);
``BudgetEvaluator`` evaluates them on a background worker from the cost store's committed
rows and alerts (log, ``otel_gemini.budget.utilization``, webhook); ``BudgetExceededError``
is what an instrumented call raises, before anything is sent, when enforcement is on and its
scope is exhausted; ``budget_status`` answers ``GET /api/observability/budgets`` and
``otel-gemini budgets``. See docs/budgets.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_gemini._lazy import lazy_exports
from otel_gemini.budgets._guard import (
    BudgetExceededError,
    Exhaustion,
    check_request,
    forget_live_session,
    refused_requests,
    watch_live_session,
)
from otel_gemini.budgets._rules import (
    ENV_BUDGETS,
    AnomalyRule,
    BudgetConfigError,
    BudgetRule,
    BudgetRules,
    WebhookSettings,
    rules_from,
)

if TYPE_CHECKING:
    from otel_gemini.budgets._alerts import BudgetAlert
    from otel_gemini.budgets._evaluator import ALERTS_METRIC, UTILIZATION_METRIC, BudgetEvaluator
    from otel_gemini.budgets._status import budget_status

# Loaded on first use: the instrumentation imports this package for the request check only.
__getattr__ = lazy_exports(
    __name__,
    "otel_gemini.budgets._exports",
    ("ALERTS_METRIC", "BudgetAlert", "BudgetEvaluator", "UTILIZATION_METRIC", "budget_status"),
    globals(),
)

__all__ = [
    "ALERTS_METRIC",
    "ENV_BUDGETS",
    "UTILIZATION_METRIC",
    "AnomalyRule",
    "BudgetAlert",
    "BudgetConfigError",
    "BudgetEvaluator",
    "BudgetExceededError",
    "BudgetRule",
    "BudgetRules",
    "Exhaustion",
    "WebhookSettings",
    "budget_status",
    "check_request",
    "forget_live_session",
    "refused_requests",
    "rules_from",
    "watch_live_session",
]
