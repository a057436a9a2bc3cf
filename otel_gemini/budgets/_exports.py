"""The budgets package's heavier public names, imported on first use (see ``__init__``)."""

from otel_gemini.budgets._alerts import BudgetAlert
from otel_gemini.budgets._evaluator import ALERTS_METRIC, UTILIZATION_METRIC, BudgetEvaluator
from otel_gemini.budgets._status import budget_status

__all__ = ["ALERTS_METRIC", "UTILIZATION_METRIC", "BudgetAlert", "BudgetEvaluator", "budget_status"]
