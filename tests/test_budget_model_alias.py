"""Budgets with a ``model`` scope when the request names one model and the response another
(an alias such as ``gemini-flash-latest`` answered by ``gemini-2.5-flash-001``, or a
``models/`` name): evaluation and enforcement key on the same names. The real google-genai
client, the fake Gemini, the real OTel SDK, CostSpanProcessor, CostStore and evaluator."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google import genai
from telemetry_maker import telemetry_maker

from otel_gemini import Telemetry
from otel_gemini.aggregate import CostStore
from otel_gemini.budgets import BudgetExceededError, BudgetRules, budget_status
from otel_gemini.pricing import PriceTable, Usage
from otel_gemini.testing import FakeGemini, ScriptedUsage

FLASH = "gemini-2.5-flash"
ALIAS = "gemini-flash-latest"
VERSION = "gemini-2.5-flash-001"
USAGE = ScriptedUsage(prompt=1000, candidates=200, thoughts=100)
DATA = Path(__file__).resolve().parent / "data"


def flash_cost() -> Decimal:
    """One call's price from the shipped table, as gemini-2.5-flash (not from our code)."""
    usage = Usage(input_tokens=1000, output_tokens=300, reasoning_output_tokens=100)
    return PriceTable.default().cost(FLASH, usage).total


def usd(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def model_rule(limit: Decimal) -> dict[str, Any]:
    rule = {"name": "per-model", "scope": "model", "limit_usd": usd(limit), "enforce": True}
    return {"budget": [rule]}


@pytest.fixture
def make_telemetry(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    yield from telemetry_maker(tmp_path, health_probe=False, langfuse=False)


def call(
    fake: FakeGemini, client: genai.Client, telemetry: Telemetry, model: str, served: str
) -> None:
    """One request for ``model`` that the fake answers as ``served``, priced and evaluated."""
    fake.add_text("ok", usage=USAGE, model_version=served)
    client.models.generate_content(model=model, contents="hi")
    assert telemetry.force_flush(10)


def entries(telemetry: Telemetry, path: Path) -> dict[str, tuple[str, int, str]]:
    assert telemetry.budgets is not None
    (budget,) = budget_status(telemetry.budgets.rules, path)["budgets"]
    return {
        entry["scope_value"]: (entry["spend_usd"], entry["requests"], entry["status"])
        for entry in budget["entries"]
    }


def stored(path: Path) -> list[tuple[str, str | None, int]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT model, request_model, cost_femto FROM generations ORDER BY rowid"
        ).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize(
    ("requested", "served", "request_model", "values"),
    [
        (ALIAS, VERSION, ALIAS, {FLASH, ALIAS}),
        (f"models/{FLASH}", VERSION, FLASH, {FLASH}),
        (ALIAS, FLASH, ALIAS, {FLASH, ALIAS}),
        (f"models/{FLASH}", FLASH, None, {FLASH}),
    ],
)
def test_an_exhausted_model_refuses_the_next_request_however_it_is_named(
    requested: str,
    served: str,
    request_model: str | None,
    values: set[str],
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
    tmp_path: Path,
) -> None:
    cost = flash_cost()
    telemetry = make_telemetry(budgets=model_rule(cost * 2))
    db = tmp_path / "costs.sqlite3"
    call(fake_gemini, gemini_client, telemetry, requested, served)
    call(fake_gemini, gemini_client, telemetry, requested, served)
    assert len(fake_gemini.requests) == 2

    # The row keeps the model that answered, and the request's when that differs; the price
    # is gemini-2.5-flash's whichever name the response gave.
    femto = int(cost * 10**15)
    assert stored(db) == [(served, request_model, femto)] * 2
    assert entries(telemetry, db) == {value: (usd(cost * 2), 2, "exceeded") for value in values}

    for name in (requested, FLASH, f"models/{VERSION}"):
        with pytest.raises(BudgetExceededError) as raised:
            gemini_client.models.generate_content(model=name, contents="one more")
        assert (raised.value.rule, raised.value.scope) == ("per-model", "model")
        assert raised.value.scope_value in values
        assert raised.value.spend_usd == usd(cost * 2)
    assert len(fake_gemini.requests) == 2  # nothing more was sent

    call(fake_gemini, gemini_client, telemetry, "gemini-2.5-pro", "gemini-2.5-pro")
    assert len(fake_gemini.requests) == 3  # another model's scope is open
    assert telemetry.health().extra["budgets"]["refused_requests"] >= 3


def test_spend_under_the_models_own_name_closes_its_alias_in_this_process_and_the_next(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
    tmp_path: Path,
) -> None:
    cost = flash_cost()
    db = tmp_path / "costs.sqlite3"
    telemetry = make_telemetry(budgets=model_rule(cost * 3))
    call(fake_gemini, gemini_client, telemetry, ALIAS, VERSION)  # the alias is learned here
    call(fake_gemini, gemini_client, telemetry, FLASH, FLASH)
    call(fake_gemini, gemini_client, telemetry, FLASH, FLASH)
    assert len(fake_gemini.requests) == 3
    # gemini-2.5-flash is spent; the alias' own spend is a third of the limit, but what it
    # points to is closed.
    with pytest.raises(BudgetExceededError) as raised:
        gemini_client.models.generate_content(model=ALIAS, contents="one more")
    assert (raised.value.scope_value, raised.value.spend_usd) == (FLASH, usd(cost * 3))
    assert len(fake_gemini.requests) == 3

    assert telemetry.budgets is not None
    status = budget_status(telemetry.budgets.rules, db)
    (budget,) = status["budgets"]
    assert budget["scope_values_with_spend"] == 2
    assert entries(telemetry, db) == {FLASH: (usd(cost * 3), 3, "exceeded")}  # alias: ok
    # One closure, listed once (the alias shares it).
    assert status["enforcement"]["exhausted_in_this_process"] == [
        {"rule": "per-model", "scope": "model", "scope_value": FLASH}
    ]
    assert telemetry.health().extra["budgets"]["exhausted_scopes"] == 1

    # A new process over the same store learns the alias from the rows.
    telemetry.shutdown()
    telemetry = make_telemetry(budgets=model_rule(cost * 3))
    assert telemetry.budgets is not None
    telemetry.budgets.evaluate_now()
    assert telemetry.budgets.force_flush(10)
    with pytest.raises(BudgetExceededError):
        gemini_client.models.generate_content(model=ALIAS, contents="after a restart")
    assert len(fake_gemini.requests) == 3


def test_an_alias_that_moved_to_another_model_follows_it(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
    tmp_path: Path,
) -> None:
    cost = flash_cost()
    telemetry = make_telemetry(budgets=model_rule(cost * 2))
    lite = "gemini-2.5-flash-lite"
    call(fake_gemini, gemini_client, telemetry, ALIAS, VERSION)
    call(fake_gemini, gemini_client, telemetry, ALIAS, lite)  # the alias now points to lite
    call(fake_gemini, gemini_client, telemetry, FLASH, FLASH)  # gemini-2.5-flash is spent
    with pytest.raises(BudgetExceededError) as raised:
        gemini_client.models.generate_content(model=FLASH, contents="spent")
    assert raised.value.scope_value == FLASH
    assert len(fake_gemini.requests) == 3
    # The alias' own spend is under the limit and the model it points to now is open.
    call(fake_gemini, gemini_client, telemetry, ALIAS, lite)
    assert len(fake_gemini.requests) == 4


def test_a_store_main_wrote_is_migrated_and_its_rows_count_under_the_answering_model(
    tmp_path: Path,
) -> None:
    # Written by main at 085bde1 (schema 2, one model a row: the response's) with
    # tests/data/make_cost_store_v2_written_by_main.py: two requests for gemini-flash-latest
    # answered by gemini-2.5-flash-001, one for gemini-2.5-flash, one for gemini-2.5-pro.
    db = tmp_path / "costs.sqlite3"
    shutil.copyfile(DATA / "cost_store_v2_written_by_main.sqlite3", db)
    db.chmod(0o600)
    rules = BudgetRules.from_dict(
        {"budget": [{"name": "per-model", "scope": "model", "limit_usd": "0.001"}]}
    )
    now = datetime(2026, 11, 3, 12, 0, tzinfo=timezone.utc)
    flash = usd(flash_cost() * 3)
    pro_usage = Usage(input_tokens=1000, output_tokens=300, reasoning_output_tokens=100)
    pro = usd(PriceTable.default().cost("gemini-2.5-pro", pro_usage).total)
    expected = {FLASH: (flash, 3), "gemini-2.5-pro": (pro, 1)}

    def spend() -> dict[str, tuple[str, int]]:
        (budget,) = budget_status(rules, db, now)["budgets"]
        return {e["scope_value"]: (e["spend_usd"], e["requests"]) for e in budget["entries"]}

    assert spend() == expected  # read before any migration
    CostStore(db, retention_days=0).shutdown(5000)  # the writer migrates
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA user_version").fetchone() == (2,)  # a column, no version
    columns = [row[1] for row in connection.execute("PRAGMA table_info(generations)")]
    assert columns[-1] == "request_model"
    assert connection.execute("SELECT count(*) FROM generations").fetchone() == (4,)
    assert connection.execute(
        "SELECT count(*) FROM generations WHERE request_model IS NULL"
    ).fetchone() == (4,)
    connection.close()
    # The alias was not kept before: those rows count under the answering model.
    assert spend() == expected
