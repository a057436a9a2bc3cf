"""Budgets and alerts (issue 19): rules, evaluation from the cost store, alerts (log, metric,
webhook), answers, enforcement and anomalies; over the real client, fake Gemini, the real OTel
SDK, CostSpanProcessor and CostStore."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google import genai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    ReadableSpan,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    TracerProvider,
)
from polling import wait_until
from starlette.testclient import TestClient
from telemetry_maker import telemetry_maker

from otel_gemini import CostSpanProcessor, Telemetry, trace_attributes
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate import CostStore
from otel_gemini.budgets import (
    ALERTS_METRIC,
    UTILIZATION_METRIC,
    BudgetConfigError,
    BudgetEvaluator,
    BudgetExceededError,
    BudgetRules,
    budget_status,
)
from otel_gemini.cli import main
from otel_gemini.health import HealthStatus
from otel_gemini.pricing import PriceTable, Usage
from otel_gemini.testing import FakeGemini, ScriptedUsage

FLASH = "gemini-2.5-flash"
USAGE = ScriptedUsage(prompt=1000, candidates=200, thoughts=100)
REPO = Path(__file__).resolve().parent.parent


def usd(amount: Decimal) -> str:
    """An amount as the alerts and answers write it (no trailing zeros)."""
    return format(amount.normalize(), "f")


def call_cost() -> Decimal:
    """One call's price, from the shipped price table (not from our code under test)."""
    usage = Usage(input_tokens=1000, output_tokens=300, reasoning_output_tokens=100)
    return PriceTable.default().cost(FLASH, usage).total


# --- a loopback webhook receiver ------------------------------------------------------------


class Receiver:
    """Answers 500 to the first ``failures`` POSTs, then 200; keeps the accepted bodies."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.accepted: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                else:
                    receiver.accepted.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(failures=2)
    yield made
    made.close()


@pytest.fixture
def make_telemetry(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    yield from telemetry_maker(tmp_path, health_probe=False, langfuse=False)


def alerts(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        record.budget_alert  # type: ignore[attr-defined]
        for record in caplog.records
        if hasattr(record, "budget_alert")
    ]


def ask(fake: FakeGemini, client: genai.Client, user: str) -> None:
    fake.add_text("ok", usage=USAGE, model=FLASH)
    with trace_attributes(user_id=user):
        client.models.generate_content(model=FLASH, contents="hi")


def metric_points(
    reader: InMemoryMetricReader, name: str = UTILIZATION_METRIC
) -> list[tuple[dict[str, Any], float]]:
    data = reader.get_metrics_data()
    points = []
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points.extend(
                        (dict(p.attributes or {}), p.value) for p in metric.data.data_points
                    )
    return points


# --- rules --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[budget]]\nname = "a"\nperiod = "week"\nlimit_usd = 1',
            "budget rule 'a': key 'period' must be one of hour, day, month (got 'week')",
        ),
        ('[[budget]]\nname = "b"\nscope = "user"', "budget rule 'b': key 'limit_usd' is required"),
        (
            '[[budget]]\nname = "c"\nlimit_usd = 1\ntimezone = "Mars/Olympus"',
            "budget rule 'c': key 'timezone' is not a known time zone (got 'Mars/Olympus')",
        ),
        (
            '[[budget]]\nname = "d"\nlimit_usd = 1\nwarn_at = [80]',
            "budget rule 'd': key 'warn_at' takes fractions of the limit between 0 and 1",
        ),
        ('[[budget]]\nname = "e"\nlimit_usd = -1', "budget rule 'e': key 'limit_usd' must be"),
        ('[[budget]]\nname = "f"\nlimit_usd = 1\nlimt = 2', "budget rule 'f': unknown key 'limt'"),
        ('[[anomaly]]\nname = "g"\nratio = 0.5', "anomaly rule 'g': key 'ratio' must be more"),
        ('[webhook]\nurl = "ftp://x"', "[webhook]: key 'url' must be an http(s) URL"),
    ],
)
def test_a_bad_rule_names_the_rule_and_the_key(toml: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(BudgetConfigError) as raised:
        BudgetRules.parse(toml)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_cli_checks_rules_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "budgets.toml"
    rules.write_text('[[budget]]\nname = "voice"\nscope = "users"\nlimit_usd = 1\n')
    assert main(["budgets", "--check", "--rules", str(rules)]) == 2
    err = capsys.readouterr().err
    assert err == (
        "otel-gemini budgets: budget rule 'voice': key 'scope' must be one of total, user, "
        "session, model, service.name, tag (got 'users')\n"
    )
    rules.write_text('[[budget]]\nname = "voice"\nscope = "user"\nlimit_usd = 1\n')
    assert main(["budgets", "--check", "--rules", str(rules)]) == 0
    assert "1 budget rule(s), 0 anomaly rule(s); valid" in capsys.readouterr().out


def test_configure_refuses_bad_rules_before_starting(
    make_telemetry: Callable[..., Telemetry],
) -> None:
    with pytest.raises(BudgetConfigError, match="budget rule 'x': key 'limit_usd' is required"):
        make_telemetry(budgets={"budget": [{"name": "x"}]})


def test_a_store_keeping_rows_shorter_than_a_period_is_refused(
    make_telemetry: Callable[..., Telemetry],
) -> None:
    monthly = {"budget": [{"name": "team", "scope": "total", "period": "month", "limit_usd": 50}]}
    with pytest.raises(
        BudgetConfigError,
        match=r"retention_days / OTEL_GEMINI_COST_RETENTION_DAYS is 7 days, shorter than the "
        r"budget rules read \(31.04 days\)",
    ):
        make_telemetry(budgets=monthly, cost_store_options={"retention_days": 7})
    make_telemetry(budgets=monthly, cost_store_options={"retention_days": 0}).shutdown()


# --- the acceptance path ------------------------------------------------------------------


def test_a_user_daily_budget_warns_at_80_and_alerts_at_100_at_the_predicted_calls(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    limit = Decimal("0.01")
    cost = call_cost()
    warn_call = math.ceil(limit * Decimal("0.8") / cost)  # 8 calls of $0.00105
    limit_call = math.ceil(limit / cost)  # 10
    assert (warn_call, limit_call) == (8, 10)
    reader = InMemoryMetricReader()
    telemetry = make_telemetry(
        meter_provider=MeterProvider(metric_readers=[reader]),
        budgets={
            "budget": [
                {
                    "name": "voice-user-daily",
                    "scope": "user",
                    "period": "day",
                    "limit_usd": "0.01",
                    "warn_at": [0.8],
                }
            ],
            "webhook": {"url": receiver.url, "retry_initial_seconds": 0.01},
        },
    )
    seen: list[tuple[int, str]] = []
    for call in range(1, limit_call + 2):
        ask(fake_gemini, gemini_client, "ana")
        ask(fake_gemini, gemini_client, "bob") if call == 1 else None
        assert telemetry.force_flush(10)
        seen.extend((call, alert["kind"]) for alert in alerts(caplog)[len(seen) :])
    assert seen == [(warn_call, "warning"), (limit_call, "limit")]
    warning, over = alerts(caplog)
    assert warning == {
        "type": "otel_gemini.budget_alert",
        "kind": "warning",
        "rule": "voice-user-daily",
        "scope": "user",
        "scope_value": "ana",
        "period_start": warning["period_start"],
        "period_end": warning["period_end"],
        "spend_usd": usd(cost * warn_call),
        "limit_usd": "0.01",
        "utilization": "0.84",
        "threshold": "0.8",
        "message": (
            f"budget 'voice-user-daily': user 'ana' reached 80 % of its limit: "
            f"${usd(cost * warn_call)} of $0.01 this day (until {warning['period_end']})"
        ),
        "details": {},
    }
    assert (over["spend_usd"], over["threshold"], over["utilization"]) == (
        usd(cost * limit_call),
        "1",
        "1.05",
    )
    start = datetime.fromisoformat(warning["period_start"])
    assert start.tzinfo is not None and start.utcoffset() == timezone.utc.utcoffset(None)
    assert (start.hour, start.minute) == (0, 0)
    # The webhook failed twice, then took each alert once.
    wait_until(lambda: len(receiver.accepted) == 2, what="both alerts at the webhook")
    assert [body["kind"] for body in receiver.accepted] == ["warning", "limit"]
    assert receiver.attempts == 4
    wait_until(
        lambda: telemetry.health().extra["budgets"]["webhook"]["delivered"] == 2,
        what="the sender to count both deliveries",
    )
    assert telemetry.health().extra["budgets"]["webhook"]["failed_attempts"] == 2
    # The metrics: by rule, no user id (the most spent user's utilization); one alert each.
    assert sorted(
        (p["otel_gemini.budget.alert.kind"], v) for p, v in metric_points(reader, ALERTS_METRIC)
    ) == [("limit", 1), ("warning", 1)]
    assert metric_points(reader) == [
        (
            {"otel_gemini.budget.rule": "voice-user-daily", "otel_gemini.budget.scope": "user"},
            float(cost * (limit_call + 1) / limit),
        )
    ]
    # The answers: the API and the CLI.
    document = TestClient(telemetry.asgi_app()).get("/api/observability/budgets").json()
    (budget,) = document["budgets"]
    assert budget["scope_values_with_spend"] == 2
    assert budget["entries"] == [
        {
            "scope_value": "ana",
            "spend_usd": usd(cost * (limit_call + 1)),
            "limit_usd": "0.01",
            "utilization": "1.155",
            "thresholds_crossed": ["0.8", "1"],
            "status": "exceeded",
            "requests": limit_call + 1,
            "unpriced_requests": 0,
        }
    ]
    assert (budget["period_start"], budget["period_end"]) == (
        warning["period_start"],
        warning["period_end"],
    )


def test_the_cli_prints_budgets_as_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = CostStore(tmp_path / "costs.sqlite3")
    pipeline = Pipeline(store)
    now = datetime.now(timezone.utc)
    pipeline.spend("ana", int(now.timestamp() * 1e9) - 10**9, tokens=(10_000, 1_200))
    store.shutdown()
    rules = tmp_path / "budgets.toml"
    rules.write_text(
        '[[budget]]\nname = "per-user"\nscope = "user"\nlimit_usd = "0.005"\n'
        '[[budget]]\nname = "team"\nlimit_usd = 100\nperiod = "month"\n'
    )
    assert main(["budgets", "--rules", str(rules), "--db", str(store.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    day_end = lines[2].split()[4]
    assert [line.split() for line in lines] == [
        ["rule", "scope", "period", "ends", "spend", "limit", "used", "status"],
        lines[1].split(),
        [
            "per-user",
            "user",
            "day",
            "(UTC)",
            day_end,
            "-",
            "$0.005",
            "120.0",
            "%",
            "1",
            "over",
            "a",
            "threshold",
        ],
        [
            "team",
            "total",
            "month",
            "(UTC)",
            lines[3].split()[4],
            "$0.006",
            "$100",
            "0.0",
            "%",
            "ok",
        ],
        [],
        ["rule", "scope", "value", "spend", "used", "status", "requests"],
        lines[6].split(),
        ["per-user", "ana", "$0.006", "120.0", "%", "exceeded", "1"],
    ]


# --- evaluation over the store, with a clock ------------------------------------------------


class Pipeline:
    """Priced spans at chosen times into a real CostStore (through CostSpanProcessor)."""

    def __init__(self, store: CostStore, service: str = "voice-app") -> None:
        self.store = store
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(CostSpanProcessor(store))
        self.tracer = self.provider.get_tracer("test")

    def spend(
        self,
        user: str,
        start_ns: int,
        tokens: tuple[int, int] = (10_000, 1_200),
        model: str = FLASH,
    ) -> None:
        """gemini-2.5-flash, 10,000 input and 1,200 output tokens: $0.003 + $0.003."""
        span = self.tracer.start_span(f"generate_content {model}", start_time=start_ns)
        span.set_attributes(
            {
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                attrs.GEN_AI_REQUEST_MODEL: model,
                attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
                attrs.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
                attrs.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
                attrs.USER_ID: user,
            }
        )
        span.end(end_time=start_ns + 10**8)


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


BERLIN = ZoneInfo("Europe/Berlin")
DAY_RULES = {
    "budget": [
        {
            "name": name,
            "scope": "user",
            "period": "day",
            "timezone": zone,
            "limit_usd": "0.01",
            "warn_at": [0.8],
            "enforce": True,
        }
        for name, zone in (("berlin-day", "Europe/Berlin"), ("utc-day", "UTC"))
    ]
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CostStore]:
    made = CostStore(tmp_path / "costs.sqlite3", retention_days=0)
    yield made
    made.shutdown()


def evaluator_for(store: CostStore, rules: Any, clock: Clock, **options: Any) -> BudgetEvaluator:
    evaluator = BudgetEvaluator(BudgetRules.from_dict(rules), store.path, clock=clock, **options)
    store.add_commit_listener(evaluator.on_committed)
    return evaluator


def flush(store: CostStore, evaluator: BudgetEvaluator) -> None:
    assert store.force_flush(10_000)
    assert evaluator.force_flush(10)


def test_spend_before_and_after_midnight_counts_in_the_rules_own_day(
    store: CostStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    before = datetime(2026, 11, 20, 23, 59, 59, tzinfo=BERLIN)  # 22:59:59 UTC
    after = datetime(2026, 11, 21, 0, 0, 1, tzinfo=BERLIN)  # 23:00:01 UTC, the same UTC day
    clock = Clock(datetime(2026, 11, 21, 0, 30, tzinfo=BERLIN))
    evaluator = evaluator_for(store, DAY_RULES, clock, enforce=False)
    pipeline = Pipeline(store)
    pipeline.spend("ana", ns(before))
    flush(store, evaluator)
    pipeline.spend("ana", ns(after))
    flush(store, evaluator)
    # Berlin: $0.006 on the 20th, $0.006 on the 21st: no threshold. UTC: $0.012 on the 20th.
    assert [(a["rule"], a["kind"], a["spend_usd"], a["period_start"]) for a in alerts(caplog)] == [
        ("utc-day", "warning", "0.012", "2026-11-20T00:00:00+00:00"),
        ("utc-day", "limit", "0.012", "2026-11-20T00:00:00+00:00"),
    ]
    status = budget_status(
        evaluator.rules, store.path, now=datetime.fromtimestamp(clock.now, BERLIN)
    )
    berlin, utc = status["budgets"]
    assert (berlin["period_start"], berlin["period_end"]) == (
        "2026-11-21T00:00:00+01:00",
        "2026-11-22T00:00:00+01:00",
    )
    assert berlin["entries"] == []  # ana's $0.006 today is under every threshold
    assert berlin["scope_values_with_spend"] == 1
    assert utc["period_start"] == "2026-11-20T00:00:00+00:00"
    assert [(e["scope_value"], e["spend_usd"], e["status"]) for e in utc["entries"]] == [
        ("ana", "0.012", "exceeded")
    ]
    evaluator.shutdown()


def test_an_exhausted_scope_opens_again_when_its_period_ends(
    store: CostStore, fake_gemini: FakeGemini, gemini_client: genai.Client
) -> None:
    clock = Clock(datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc))
    rules = {"budget": [{"name": "cap", "scope": "user", "limit_usd": "0.006", "enforce": True}]}
    evaluator = evaluator_for(store, rules, clock)
    Pipeline(store).spend("ana", ns(datetime(2026, 11, 20, 22, 0, tzinfo=timezone.utc)))
    flush(store, evaluator)
    from otel_gemini.budgets import check_request

    with trace_attributes(user_id="ana"), pytest.raises(BudgetExceededError) as raised:
        check_request(FLASH)
    assert raised.value.period_end == datetime(2026, 11, 21, tzinfo=ZoneInfo("UTC"))
    clock.now = datetime(2026, 11, 21, 0, 0, 1, tzinfo=timezone.utc).timestamp()
    # Open at once (the closed scope carries its period's end), and the worker notices the
    # period's end by itself (it checks every second) and re-reads: nothing exhausted.
    assert _admitted("ana")
    wait_until(lambda: evaluator.stats()["exhausted_scopes"] == 0, what="ana's new day")
    evaluator.shutdown()


def _admitted(user: str) -> bool:
    from otel_gemini.budgets import check_request

    try:
        with trace_attributes(user_id=user):
            check_request(FLASH)
    except BudgetExceededError:
        return False
    return True


_CHILD = """
import sys
from opentelemetry.sdk.trace import TracerProvider
from otel_gemini import CostSpanProcessor, _attributes as attrs
from otel_gemini.aggregate import CostStore
store = CostStore(sys.argv[1], retention_days=0)
provider = TracerProvider()
provider.add_span_processor(CostSpanProcessor(store))
tracer = provider.get_tracer("child")
for i in range(int(sys.argv[3])):
    start = int(sys.argv[2]) + i * 1000
    span = tracer.start_span("generate_content", start_time=start)
    span.set_attributes({attrs.GEN_AI_OPERATION_NAME: "generate_content",
        attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash", attrs.GEN_AI_PROVIDER_NAME: "gcp.gemini",
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 10000, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1200,
        attrs.USER_ID: "ana"})
    span.end(end_time=start + 100)
store.shutdown()
"""


def test_two_processes_sharing_one_store_see_one_total_and_a_restart_keeps_it(
    store: CostStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    moment = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    clock = Clock(moment)
    rules = {"budget": [{"name": "cap", "scope": "user", "limit_usd": "0.03", "warn_at": [0.5]}]}
    evaluator = evaluator_for(store, rules, clock)
    pipeline = Pipeline(store)
    pipeline.spend("ana", ns(moment) - 5 * 10**9)  # $0.006 here
    flush(store, evaluator)
    # Another process writes 2 × $0.006 for ana to the same file.
    subprocess.run(
        [sys.executable, "-c", _CHILD, str(store.path), str(ns(moment) - 4 * 10**9), "2"],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    evaluator.evaluate_now()  # what the worker does every interval
    assert evaluator.force_flush(10)
    assert [(a["kind"], a["spend_usd"]) for a in alerts(caplog)] == [("warning", "0.018")]
    pipeline.spend("ana", ns(moment) - 3 * 10**9)  # $0.024: this process adds its own
    flush(store, evaluator)
    assert (
        budget_status(evaluator.rules, store.path, now=moment)["budgets"][0]["entries"][0][
            "spend_usd"
        ]
        == "0.024"
    )
    evaluator.shutdown()

    # A restart: the period's spend is read back; the warning is not sent again.
    restarted = evaluator_for(store, rules, clock)
    pipeline.spend("ana", ns(moment) - 2 * 10**9)  # $0.030: the limit
    flush(store, restarted)
    assert [(a["kind"], a["spend_usd"]) for a in alerts(caplog)] == [
        ("warning", "0.018"),
        ("limit", "0.03"),
    ]
    restarted.shutdown()


# --- enforcement --------------------------------------------------------------------------


def test_enforcement_refuses_a_call_before_it_reaches_gemini_and_fails_open(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    cost = call_cost()
    telemetry = make_telemetry(
        budgets={
            "budget": [
                {"name": "cap", "scope": "user", "limit_usd": usd(cost * 2), "enforce": True}
            ]
        }
    )
    assert telemetry.budgets is not None and telemetry.cost_store is not None
    ask(fake_gemini, gemini_client, "ana")
    ask(fake_gemini, gemini_client, "ana")
    assert telemetry.force_flush(10)
    assert len(fake_gemini.requests) == 2
    with trace_attributes(user_id="ana"), pytest.raises(BudgetExceededError) as raised:
        gemini_client.models.generate_content(model=FLASH, contents="one more")
    assert len(fake_gemini.requests) == 2  # nothing was sent
    assert (raised.value.rule, raised.value.scope, raised.value.scope_value) == (
        "cap",
        "user",
        "ana",
    )
    assert raised.value.spend_usd == usd(cost * 2)
    ask(fake_gemini, gemini_client, "bob")  # another user's scope is open
    assert len(fake_gemini.requests) == 3
    assert telemetry.health().extra["budgets"]["refused_requests"] >= 1

    # The totals cannot be read (the store file is gone): requests go through, health says so.
    telemetry.cost_store.path.unlink()
    telemetry.budgets.evaluate_now()
    assert telemetry.budgets.force_flush(10)
    ask(fake_gemini, gemini_client, "ana")
    assert len(fake_gemini.requests) == 4
    report = telemetry.health()
    assert report.status is HealthStatus.DEGRADED
    assert any("budgets cannot read the cost store" in reason for reason in report.reasons)
    assert report.extra["budgets"]["totals_readable"] is False
    assert report.extra["budgets"]["read_errors"] >= 1


# --- anomalies ----------------------------------------------------------------------------


def test_an_anomaly_alerts_once_when_cost_per_request_triples(
    store: CostStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    moment = datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc)
    clock = Clock(moment)
    rules = {
        "anomaly": [{"name": "cpr", "by": "model", "ratio": 3, "min_requests": 5}],
        "settings": {"interval_seconds": 0.2},
    }
    evaluator = evaluator_for(store, rules, clock)
    pipeline = Pipeline(store)
    day = 86_400 * 10**9
    for i in range(10):  # the previous 7 days: $0.006 a request
        pipeline.spend(f"u{i}", ns(moment) - (i % 6 + 1) * day)
    for i in range(4):  # the last hour: $0.018 a request, but only 4 requests so far
        pipeline.spend(f"u{i}", ns(moment) - (i + 1) * 60 * 10**9, tokens=(30_000, 3_600))
    flush(store, evaluator)
    evaluator.evaluate_now()
    assert evaluator.force_flush(10)
    assert alerts(caplog) == []
    pipeline.spend("u9", ns(moment) - 10**9, tokens=(30_000, 3_600))  # the 5th
    flush(store, evaluator)
    # Within one evaluation interval (0.2 s here), without being asked.
    wait_until(lambda: len(alerts(caplog)) == 1, timeout=5, what="the anomaly alert")
    (alert,) = alerts(caplog)
    assert (alert["kind"], alert["rule"], alert["scope"], alert["scope_value"]) == (
        "anomaly",
        "cpr",
        "model",
        FLASH,
    )
    assert alert["details"] == {
        "recent_cost_per_request": "0.018",
        "baseline_cost_per_request": "0.006",
        "ratio": "3",
        "recent_requests": "5",
        "baseline_requests": "10",
    }
    evaluator.evaluate_now()
    assert evaluator.force_flush(10)
    assert len(alerts(caplog)) == 1  # once
    evaluator.shutdown()


def status_now(telemetry: Telemetry) -> Any:
    assert telemetry.budgets is not None
    return budget_status(telemetry.budgets.rules, telemetry.budgets.store_path)


# --- Live sessions --------------------------------------------------------------------------

LIVE_MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
LIVE_TURN = ScriptedUsage(
    prompt=150,
    candidates=75,
    thoughts=12,
    prompt_by_modality={"TEXT": 112, "AUDIO": 38},
    candidates_by_modality={"AUDIO": 75},
)  # $0.001094 (tests/test_live.py)


@pytest.mark.genai
async def test_an_open_live_session_gets_an_event_and_a_new_one_is_refused(
    fake_gemini_live: FakeGemini,
    gemini_live_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    import asyncio

    from google.genai import types
    from live_audio import pcm
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_gemini.testing import LiveScript, ModelText, TurnComplete, WaitFor

    telemetry = make_telemetry(
        budgets={
            "budget": [{"name": "voice", "scope": "user", "limit_usd": "0.001", "enforce": True}]
        }
    )
    finished = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(finished))
    turn = [WaitFor("audio_stream_end"), ModelText("Hello."), TurnComplete(usage=LIVE_TURN)]
    fake_gemini_live.add_live_session(LiveScript([*turn, *turn], session_id="voice-1"))

    async def one_turn(session: Any) -> list[types.LiveServerMessage]:
        await session.send_realtime_input(audio=pcm(0.5))
        await session.send_realtime_input(audio_stream_end=True)
        return [message async for message in session.receive()]

    with trace_attributes(user_id="caller-7"):
        async with gemini_live_client.aio.live.connect(
            model=LIVE_MODEL, config={"response_modalities": ["TEXT"]}
        ) as session:
            await one_turn(session)  # $0.001094: over the $0.001 limit
            await session.send_realtime_input(audio=pcm(0.5))
            await session.send_realtime_input(audio_stream_end=True)
            second = []
            async for message in session.receive():
                second.append(message)
                if len(second) == 1:
                    # Turn 2's first output finalises turn 1 (its span ends): the store and
                    # the budgets see it mid-turn; the turn goes on to its end.
                    assert await asyncio.to_thread(telemetry.force_flush, 10)
                    (entry,) = status_now(telemetry)["budgets"][0]["entries"]
                    assert entry["spend_usd"] == "0.001094"
            assert second[-1].server_content and second[-1].server_content.turn_complete
        with pytest.raises(BudgetExceededError):
            async with gemini_live_client.aio.live.connect(model=LIVE_MODEL) as refused:
                await one_turn(refused)
    assert len(fake_gemini_live.live_sessions) == 1  # the second never connected
    (span,) = [s for s in finished.get_finished_spans() if s.name.startswith("live_session")]
    (event,) = [e for e in span.events if e.name == "otel_gemini.budget.exhausted"]
    assert dict(event.attributes or {}) == {
        "otel_gemini.budget.rule": "voice",
        "otel_gemini.budget.scope": "user",
        "otel_gemini.budget.period_end": event.attributes["otel_gemini.budget.period_end"],  # type: ignore[index]
    }


# --- webhook formats and failures; tag scopes; the API's edges ------------------------------


def test_a_webhook_that_keeps_failing_is_counted_and_makes_health_degraded(
    store: CostStore,
) -> None:
    failing = Receiver(failures=1000)
    try:
        moment = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
        rule = {"name": "cap", "scope": "tag", "tag": "voice", "limit_usd": "0.01"}
        hook = {"url": failing.url, "attempts": 2, "retry_initial_seconds": 0.01}
        evaluator = evaluator_for(store, {"budget": [rule], "webhook": hook}, Clock(moment))
        pipeline = Pipeline(store)
        for tags in (("voice",), ("chat",), ("beta", "voice")):
            span = pipeline.tracer.start_span("generate_content", start_time=ns(moment) - 10**9)
            span.set_attributes(
                {
                    attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                    attrs.GEN_AI_REQUEST_MODEL: FLASH,
                    attrs.GEN_AI_USAGE_INPUT_TOKENS: 10_000,
                    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1_200,
                    attrs.LANGFUSE_TRACE_TAGS: tags,
                }
            )
            span.end(end_time=ns(moment) - 10**8)
        flush(store, evaluator)
        # Two "voice" requests ($0.012): the warning and the limit, two tries each.
        wait_until(lambda: evaluator.stats()["webhook"]["dropped"]["gave_up"] == 2)
        stats = evaluator.stats()["webhook"]
        assert (stats["delivered"], stats["failed_attempts"]) == (0, 4)
        assert evaluator.problems() == [
            "budget webhook (127.0.0.1): 2 alert(s) could not be delivered (HTTP 500); "
            "they are in the log"
        ]
        assert failing.attempts == 4
        (entry,) = budget_status(evaluator.rules, store.path, now=moment)["budgets"][0]["entries"]
        assert (entry["scope_value"], entry["spend_usd"], entry["requests"]) == (
            "voice",
            "0.012",
            2,
        )
        evaluator.shutdown()
    finally:
        failing.close()


def test_the_slack_payload_is_text_and_one_section() -> None:
    from otel_gemini.budgets import BudgetAlert

    alert = BudgetAlert(
        kind="limit",
        rule="cap",
        scope="user",
        scope_value="ana",
        period_start="2026-11-20T00:00:00+00:00",
        period_end="2026-11-21T00:00:00+00:00",
        spend_usd="0.012",
        limit_usd="0.01",
        utilization="1.2",
        threshold="1",
        message="budget 'cap': user 'ana' reached its limit",
    )
    assert alert.slack_payload() == {
        "text": ":no_entry: budget 'cap': user 'ana' reached its limit",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": ":no_entry: budget 'cap': user 'ana' reached its limit",
                },
            }
        ],
    }


def test_the_budgets_endpoint_without_rules_is_404_and_refuses_parameters(
    make_telemetry: Callable[..., Telemetry],
) -> None:
    plain = TestClient(make_telemetry().asgi_app())
    response = plain.get("/api/observability/budgets")
    assert response.status_code == 404
    assert response.json()["error"] == "not_configured"


def test_the_budgets_endpoint_refuses_parameters_and_answers_503_without_a_store(
    tmp_path: Path,
) -> None:
    from otel_gemini.server import observability_app

    rules = BudgetRules.parse('[[budget]]\nname = "t"\nlimit_usd = 1\n')
    app = observability_app(budgets=lambda: budget_status(rules, tmp_path / "none.sqlite3"))
    client = TestClient(app)
    response = client.get("/api/observability/budgets", params={"rule": "t"})
    assert (response.status_code, response.json()["parameter"]) == (400, "rule")
    response = client.get("/api/observability/budgets")
    assert response.status_code == 503
    assert "there is no cost store at" in response.json()["message"]


def test_serve_names_a_bad_budgets_file_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "budgets.toml"
    rules.write_text('[[budget]]\nname = "x"\nlimit_usd = "ten"\n')
    code = main(["serve", "--port", "0", "--budgets", str(rules), "--db", str(tmp_path / "c")])
    assert code == 2
    assert capsys.readouterr().err == (
        "otel-gemini serve: budget rule 'x': key 'limit_usd' must be a number (got 'ten')\n"
    )


def test_a_batch_with_more_users_than_one_query_takes_is_exact(
    store: CostStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    moment = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    rules = {"budget": [{"name": "cap", "scope": "user", "limit_usd": "0.012", "warn_at": [0.5]}]}
    pipeline = Pipeline(store)
    for user in range(600):  # one batch, 600 users: read in chunks of 500
        pipeline.spend(f"u{user:04}", ns(moment) - 10**9)
    evaluator = evaluator_for(store, rules, Clock(moment))
    flush(store, evaluator)
    evaluator.evaluate_now()
    assert evaluator.force_flush(10)
    assert len(alerts(caplog)) == 600  # each user's $0.006 is 50 %
    for user in range(600):
        pipeline.spend(f"u{user:04}", ns(moment) - 10**9)
    flush(store, evaluator)
    assert [a["kind"] for a in alerts(caplog)].count("limit") == 600
    assert {a["spend_usd"] for a in alerts(caplog)[600:]} == {"0.012"}
    evaluator.shutdown()


async def test_enforcement_refuses_async_and_streaming_calls_too(
    fake_gemini: FakeGemini,
    gemini_client: genai.Client,
    make_telemetry: Callable[..., Telemetry],
) -> None:
    import asyncio

    telemetry = make_telemetry(
        budgets={"budget": [{"name": "model-cap", "scope": "model", "limit_usd": "0.001"}]}
    )
    assert telemetry.budgets is not None and not telemetry.budgets.stats()["enforcing"]
    telemetry.shutdown()  # alerts only: nothing refused; now one that enforces
    telemetry = make_telemetry(
        budgets={
            "budget": [
                {"name": "model-cap", "scope": "model", "limit_usd": "0.001", "enforce": True}
            ]
        }
    )
    fake_gemini.add_text("ok", usage=USAGE, model=FLASH)
    await gemini_client.aio.models.generate_content(model=f"models/{FLASH}", contents="hi")
    assert await asyncio.to_thread(telemetry.force_flush, 10)
    with pytest.raises(BudgetExceededError) as raised:
        await gemini_client.aio.models.generate_content(model=FLASH, contents="again")
    assert (raised.value.scope, raised.value.scope_value) == ("model", FLASH)
    with pytest.raises(BudgetExceededError):
        for _ in gemini_client.models.generate_content_stream(model=FLASH, contents="s"):
            pass
    assert len(fake_gemini.requests) == 1
    fake_gemini.add_text("ok", usage=USAGE)
    await gemini_client.aio.models.generate_content(model="gemini-2.5-pro", contents="other")
    assert len(fake_gemini.requests) == 2


def test_user_ids_reach_the_metric_only_when_opted_in(store: CostStore) -> None:
    moment = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    pipeline = Pipeline(store)
    pipeline.spend("ana", ns(moment) - 2 * 10**9)  # $0.006
    pipeline.spend("bob", ns(moment) - 10**9, tokens=(20_000, 2_400))  # $0.012
    found = []
    for opted_in in (False, True):
        reader = InMemoryMetricReader()
        rules = {
            "budget": [{"name": "cap", "scope": "user", "limit_usd": "0.024"}],
            "settings": {"metric_user_ids": opted_in},
        }
        evaluator = evaluator_for(
            store, rules, Clock(moment), meter_provider=MeterProvider(metric_readers=[reader])
        )
        flush(store, evaluator)
        evaluator.evaluate_now()
        assert evaluator.force_flush(10)
        found.append(sorted(metric_points(reader), key=lambda point: point[1]))
        evaluator.shutdown()
    base = {"otel_gemini.budget.rule": "cap", "otel_gemini.budget.scope": "user"}
    assert found == [
        [(base, 0.5)],  # the most spent user's, no id
        [
            ({**base, "otel_gemini.budget.scope_value": "ana"}, 0.25),
            ({**base, "otel_gemini.budget.scope_value": "bob"}, 0.5),
        ],
    ]


def test_a_failed_request_without_usage_costs_nothing_and_is_not_unpriced(
    store: CostStore,
) -> None:
    """As in the costs answer: only a request of unknown price is unpriced; a failed
    request that reported no usage billed nothing, and counts as a request only."""
    from cost_workload import Call, money, record

    calls = [
        Call("ana", None, FLASH, "2026-11-20T10:00:00Z", 100, 1000, 100),
        Call("ana", None, "gemini-9-imaginary", "2026-11-20T10:01:00Z", 100, 1000, 100),
        Call("ana", None, FLASH, "2026-11-20T10:02:00Z", 50, 0, 0, error=True),
    ]
    record(calls, store)
    assert store.force_flush(10_000)
    rules = BudgetRules.from_dict({"budget": [{"name": "all", "limit_usd": "1"}]})
    moment = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    (budget,) = budget_status(rules, store.path, now=moment)["budgets"]
    (entry,) = budget["entries"]
    assert (entry["spend_usd"], entry["requests"], entry["unpriced_requests"]) == (
        money(calls[0].cost),
        3,
        1,
    )


def test_a_span_written_again_counts_once_in_the_budget(
    store: CostStore, caplog: pytest.LogCaptureFixture
) -> None:
    # A gateway's sender retries a request it saw refused: the same spans arrive again. The
    # store keeps one row a span (INSERT OR REPLACE); the budget must not add them twice.
    caplog.set_level(logging.WARNING, logger="otel_gemini.budgets")
    priced: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            priced.append(span)

    clock = Clock(datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc))
    evaluator = evaluator_for(store, DAY_RULES, clock, enforce=False)
    fan_out = SynchronousMultiSpanProcessor()
    fan_out.add_span_processor(store)
    fan_out.add_span_processor(Keep())
    provider = TracerProvider()
    provider.add_span_processor(CostSpanProcessor(fan_out))
    span = provider.get_tracer("test").start_span(
        f"generate_content {FLASH}", start_time=ns(datetime(2026, 11, 21, 11, 0, tzinfo=BERLIN))
    )
    span.set_attributes(
        {
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
            attrs.GEN_AI_REQUEST_MODEL: FLASH,
            attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
            attrs.GEN_AI_USAGE_INPUT_TOKENS: 10_000,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 1_200,
            attrs.USER_ID: "ana",
        }
    )
    span.end()
    flush(store, evaluator)
    for _ in range(2):  # delivered twice more, in separate writes
        store.on_end(priced[0])
        flush(store, evaluator)
    status = budget_status(
        evaluator.rules, store.path, now=datetime.fromtimestamp(clock.now, timezone.utc)
    )
    assert [b["scope_values_with_spend"] for b in status["budgets"]] == [1, 1]
    assert store.stats()["written"] == 3  # three writes of one row
    # $0.006 of a $0.01 limit: no warning (added three times, $0.018 would alert twice a rule).
    assert alerts(caplog) == []
    evaluator.shutdown()
