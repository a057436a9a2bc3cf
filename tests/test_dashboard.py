"""The dashboard page in a real headless Chromium, against ``otel-gemini serve`` on a store
filled by the demo workload, and against the same generations in the (fake) Langfuse.

The page shows what the answers API says: every figure read off the page here is compared
with the API's answer for the same filters. The browser is Debian's ``chromium`` driven
through its ``chromedriver`` by Selenium (``make browser`` installs them); without them the
browser tests skip, saying why. Screenshots are kept in pytest's temporary directory (the
path is printed), or in ``$OTEL_GEMINI_TEST_ARTIFACTS`` when that is set (CI keeps it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cost_workload import CALLS, WINDOW, Call, record
from cost_workload import money as workload_money
from polling import wait_until
from starlette.testclient import TestClient

from otel_gemini.aggregate import CostAnswers, CostStore, LocalCostSource
from otel_gemini.server import observability_app
from otel_gemini.server._dashboard import CONTENT_SECURITY_POLICY
from otel_gemini.testing import FakeLangfuse

CHROMIUM = "chromium"
CHROMEDRIVER = "chromedriver"
# A user id and a session id that would run script if the page rendered them as HTML.
HOSTILE = '<img src=x onerror="window.__pwned=1">'
UNKNOWN_MODEL = "gemini-9-imaginary"
DEMO_SPANS = 14  # the demo's spans (test_demo.py): what Langfuse must have before we ask it
DEMO_TOTAL = "0.01183994"
SERVE = (sys.executable, "-m", "otel_gemini.cli", "serve")


def _environment(home: Path, **extra: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LANGFUSE_", "OTEL_", "GEMINI_", "GOOGLE_"))
    }
    environment["HOME"] = str(home)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), environment.get("PYTHONPATH", "")]
    )
    environment.update(extra)
    return environment


@dataclass
class Served:
    url: str
    api: httpx.Client

    def answer(self, path: str, **params: str) -> dict[str, Any]:
        response = self.api.get(f"/api/observability/{path}", params=params)
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document


@contextmanager
def serving(db: Path, home: Path, settings: dict[str, str], *options: str) -> Iterator[Served]:
    """``otel-gemini serve --db db [options]`` on a free port, until the block ends."""
    serve = subprocess.Popen(
        [*SERVE, "--db", str(db), "--port", "0", "--no-export", "--log-level", "warning", *options],
        env=_environment(home, **settings),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stderr is not None
        banner = serve.stderr.readline()
        found = re.search(r"dashboard (http://127\.0\.0\.1:\d+)/", banner)
        assert found, banner
        with httpx.Client(base_url=found.group(1), timeout=30) as api:
            yield Served(found.group(1), api)
    finally:
        serve.terminate()
        serve.wait(timeout=30)


@dataclass
class DemoStore:
    db: Path
    home: Path
    settings: dict[str, str]


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStore]:
    """A store filled by the demo workload, with the demo's spans in a fake Langfuse too
    (the demo exported them there), plus one generation of a model without a price by a
    user whose id is HTML, written to the store only."""
    directory = tmp_path_factory.mktemp("dashboard")
    db = directory / "costs.sqlite3"
    with FakeLangfuse() as langfuse:
        settings = {**langfuse.environment(), "OTEL_GEMINI_SPOOL_DIR": str(directory / "spool")}
        demo = subprocess.run(
            [sys.executable, "-m", "otel_gemini.cli", "demo", "--db", str(db), "--quiet"],
            env=_environment(directory, **settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert demo.returncode == 0, demo.stderr
        langfuse.wait_for_spans(DEMO_SPANS)

        store = CostStore(db, retention_days=0)
        start = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
        record([Call(HOSTILE, HOSTILE, UNKNOWN_MODEL, start, 700, 1000, 100, ttft_ms=120)], store)
        store.shutdown(10_000)
        yield DemoStore(db, directory, settings)


@pytest.fixture(scope="module")
def served(demo_store: DemoStore) -> Iterator[Served]:
    """``otel-gemini serve`` on the demo's store, without budget rules."""
    with serving(demo_store.db, demo_store.home, demo_store.settings) as served:
        yield served


BUDGET_RULES = """
[[budget]]
name = "team-daily"
scope = "total"
period = "day"
limit_usd = "0.01"

[[budget]]
name = "per-user-daily"
scope = "user"
period = "day"
limit_usd = "0.003"
warn_at = [0.5, 0.8]

[[budget]]
name = "per-model-monthly"
scope = "model"
period = "month"
limit_usd = 100

[[budget]]
name = "beta-feature"
scope = "tag"
tag = "beta"
period = "month"
limit_usd = 1

[[anomaly]]
name = "cost-per-request"
by = "model"
ratio = 3
"""


@pytest.fixture(scope="module")
def served_with_budgets(demo_store: DemoStore) -> Iterator[Served]:
    """``otel-gemini serve --budgets rules.toml`` on the demo's store."""
    rules = demo_store.home / "budgets.toml"
    rules.write_text(BUDGET_RULES)
    with serving(
        demo_store.db, demo_store.home, demo_store.settings, "--budgets", str(rules)
    ) as served:
        yield served


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which(CHROMIUM), shutil.which(CHROMEDRIVER)
    if chromium is None or driver is None:
        pytest.skip("no headless browser: Debian's chromium and chromium-driver (make browser)")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (the dev extra has it)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        session = webdriver.Chrome(service=Service(driver), options=options)
    except WebDriverException as error:
        pytest.skip(f"chromium cannot run here: {error.msg}")
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("OTEL_GEMINI_TEST_ARTIFACTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# --- reading the page --------------------------------------------------------------------


def open_page(browser: Any, url: str) -> None:
    """Loads ``url`` and waits (polling, with a deadline) until every panel is drawn."""
    browser.get(url)
    wait_until(
        lambda: browser.execute_script("return document.body.dataset.state") in ("ready", "failed"),
        timeout=30,
        what=f"the dashboard at {url} to be drawn",
    )
    assert browser.execute_script("return document.body.dataset.state") == "ready"


def text(browser: Any, element_id: str) -> str:
    value: str = browser.execute_script(
        "return document.getElementById(arguments[0]).textContent", element_id
    )
    return value


def rows(browser: Any, table_id: str) -> list[list[str]]:
    """A table's body cells (its text, also when its <details> is closed)."""
    cells: list[list[str]] = browser.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')]"
        ".map(tr => [...tr.cells].map(td => td.textContent))",
        table_id,
    )
    return cells


def money(cost: str | None, unpriced: int | None = 0) -> str:
    if cost is None:
        return "unknown"
    return f"${cost} + unknown ({unpriced:,} unpriced)" if unpriced else f"${cost}"


def count(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def milliseconds(value: float | None) -> str:
    return "—" if value is None else (str(int(value)) if value == int(value) else repr(value))


def assert_page_matches_api(browser: Any, served: Served, **filters: str) -> dict[str, Any]:
    """Totals, top user, model rows, latency p50/p95/p99 and time to first chunk on the
    page equal the API's answers for the same filters. Returns the costs-by-model answer."""
    by_model = served.answer("costs", group_by="model", **filters)
    total = by_model["total"]
    assert text(browser, "total-cost") == money(total["cost"], total["unpriced_requests"])
    assert text(browser, "total-requests") == count(total["requests"])
    assert text(browser, "total-tokens") == (
        f"{count(total['input_tokens'])} / {count(total['output_tokens'])}"
    )
    assert text(browser, "total-errors") == count(total["errors"])
    assert rows(browser, "table-by-model") == [
        [
            group["model"],
            money(group["cost"], group["unpriced_requests"]),
            money(group["input_cost"], group["unpriced_requests"]),
            money(group["output_cost"], group["unpriced_requests"]),
            count(group["requests"]),
            count(group["input_tokens"]),
            count(group["output_tokens"]),
            count(group["errors"]),
        ]
        for group in by_model["groups"]
    ]

    by_user = served.answer("costs", group_by="user", **filters)["groups"]
    priced = [group for group in by_user if group["cost"] is not None]
    top = max(priced, key=lambda group: Decimal(group["cost"]))
    first = rows(browser, "table-top-users")[0]
    assert first[:3] == ["1", top["user"], money(top["cost"], top["unpriced_requests"])]

    latency = served.answer("latency", group_by="model", **filters)["groups"]
    assert rows(browser, "table-latency-by-model") == [
        [
            group["model"],
            count(group["requests"]),
            count(group["errors"]),
            "unknown" if group["error_rate"] is None else f"{100 * group['error_rate']:.1f} %",
            *(milliseconds(group["latency_ms"][p]) for p in ("p50", "p95", "p99")),
        ]
        for group in latency
    ]
    assert rows(browser, "table-ttft") == [
        [
            group["model"],
            count(group["time_to_first_token_ms"]["count"]),
            *(milliseconds(group["time_to_first_token_ms"][p]) for p in ("p50", "p95", "p99")),
        ]
        for group in latency
        if group["time_to_first_token_ms"]["count"]
    ]
    return by_model


def csp_violations(browser: Any) -> list[str]:
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]


def percent(decimal: str | None) -> str:
    """A utilization (a decimal string) as the page shows it: times 100, exactly."""
    if decimal is None:
        return "—"
    text = format(Decimal(decimal).scaleb(2), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} %"


def shown_value(rule: dict[str, Any], entry: dict[str, Any]) -> str:
    return "(all)" if rule["scope"] == "total" else str(entry["scope_value"])


def budget_rows(document: dict[str, Any], lower_bound: bool = False) -> list[list[str]]:
    """The budgets table the page must show for a ``/budgets`` answer: one row per rule and
    scope value listed, one row for a per-value rule with none over a threshold."""
    expected = []
    for rule in document["budgets"]:
        scope = f"tag {rule['tag']}" if rule["scope"] == "tag" else rule["scope"]
        head = [rule["rule"], scope]
        period = [f"{rule['period']} ({rule['timezone']})", rule["period_end"]]
        if not rule["entries"]:
            value = f"none over a threshold ({rule['scope_values_with_spend']:,} with spend)"
            highest = f"highest {percent(rule['highest_utilization'])}"
            expected.append(
                [*head, value, *period, "—", f"${rule['limit_usd']}", highest, "ok", "—"]
            )
        for entry in rule["entries"]:
            spend = money(entry["spend_usd"], entry["unpriced_requests"])
            crossed = [percent(threshold) for threshold in entry["thresholds_crossed"]]
            status = f"{entry['status']} ({', '.join(crossed)})" if crossed else entry["status"]
            expected.append(
                [
                    *head,
                    shown_value(rule, entry),
                    *period,
                    f"≥ {spend}" if lower_bound else spend,
                    f"${rule['limit_usd']}",
                    percent(entry["utilization"]),
                    status,
                    count(entry["requests"]),
                ]
            )
    return expected


def anomaly_rows(document: dict[str, Any]) -> list[list[str]]:
    def cost(value: str | None) -> str:
        return "—" if value is None else f"${value}"

    expected = []
    for rule in document["anomalies"]:
        for entry in rule["entries"]:
            expected.append(
                [
                    rule["rule"],
                    rule["scope"],
                    entry["scope_value"],
                    cost(entry["recent_cost_per_request"]),
                    cost(entry["baseline_cost_per_request"]),
                    "—" if entry["ratio"] is None else f"{entry['ratio']}×",
                    f"{rule['ratio']}×",
                    f"{entry['recent_requests']:,} / {entry['baseline_requests']:,}",
                    entry["status"].replace("_", " "),
                ]
            )
    return expected


def budget_bars(browser: Any) -> dict[str, list[tuple[str, str]]]:
    """The budgets chart's bars by status trace: (label, text on the bar), top to bottom."""
    traces: list[dict[str, Any]] = browser.execute_script(
        "return document.getElementById('chart-budgets').data"
        ".map(t => ({name: t.name, y: t.y, text: t.text}))"
    )
    return {
        trace["name"]: list(zip(trace["y"], trace["text"], strict=True))[::-1] for trace in traces
    }


def expected_bars(document: dict[str, Any], lower_bound: bool = False) -> dict[str, Any]:
    bars: dict[str, list[tuple[str, str]]] = {}
    for rule in document["budgets"]:
        for entry in rule["entries"]:
            text = ("≥ " if lower_bound else "") + percent(entry["utilization"])
            bar = (html_escaped(f"{rule['rule']} · {shown_value(rule, entry)}"), text)
            bars.setdefault(entry["status"], []).append(bar)
    return bars


def html_escaped(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_page_shows_the_apis_figures_and_follows_its_filters(
    browser: Any, served: Served, artifacts: Path
) -> None:
    open_page(browser, f"{served.url}/")
    by_model = assert_page_matches_api(browser, served)
    # The demo's priced total, and the imaginary model's generation as unknown, not $0.
    assert text(browser, "total-cost") == f"${DEMO_TOTAL} + unknown (1 unpriced)"
    imaginary = next(row for row in rows(browser, "table-by-model") if row[0] == UNKNOWN_MODEL)
    assert imaginary[1:5] == ["unknown", "unknown", "unknown", "1"]
    assert [group["model"] for group in by_model["groups"]] == [
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-native-audio-preview-09-2025",
        "gemini-2.5-pro",
        UNKNOWN_MODEL,
    ]
    assert rows(browser, "table-top-users")[0][1] == "ben"
    assert text(browser, "health-status") == "unknown"  # serve --no-export runs no pipeline
    # No budget rules: the endpoint says 404 and the page leaves the panel out, quietly.
    assert served.api.get("/api/observability/budgets").status_code == 404
    assert browser.find_element("id", "panel-budgets").get_attribute("hidden") is not None
    assert "budget" not in text(browser, "notices").lower()
    assert csp_violations(browser) == []
    screenshot = artifacts / "dashboard-local.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"dashboard screenshot: {screenshot}")

    # A filter changed in the form lands in the URL, and the page shows that answer.
    browser.find_element("id", "filter-model").send_keys("gemini-2.5-flash")
    browser.find_element("id", "apply").click()
    wait_until(
        lambda: (
            "model=gemini-2.5-flash" in browser.current_url
            and browser.execute_script("return document.body.dataset.state") == "ready"
        ),
        timeout=30,
        what="the page filtered to gemini-2.5-flash",
    )
    assert_page_matches_api(browser, served, model="gemini-2.5-flash")
    assert text(browser, "total-cost") == "$0.00166754"
    assert [row[0] for row in rows(browser, "table-by-model")] == ["gemini-2.5-flash"]
    assert browser.find_element("id", "filter-model").get_attribute("value") == ("gemini-2.5-flash")
    browser.save_screenshot(str(artifacts / "dashboard-local-flash.png"))

    # The URL alone carries the state: a shared link shows the same view.
    open_page(browser, f"{served.url}/dashboard?user=ben&group=user")
    assert_page_matches_api(browser, served, user="ben")
    by_day = served.answer("costs", group_by="day,user", user="ben")["groups"]
    assert [row[:3] for row in rows(browser, "table-cost-by-day")] == [
        [group["day"], group["user"], money(group["cost"], group["unpriced_requests"])]
        for group in by_day
    ]


@pytest.mark.browser
def test_the_budgets_panel_shows_the_endpoints_figures_for_each_rule(
    browser: Any, served_with_budgets: Served, artifacts: Path
) -> None:
    served = served_with_budgets
    open_page(browser, f"{served.url}/")
    document = served.answer("budgets")
    assert browser.find_element("id", "panel-budgets").get_attribute("hidden") is None
    assert [rule["rule"] for rule in document["budgets"]] == [
        "team-daily",
        "per-user-daily",
        "per-model-monthly",
        "beta-feature",
    ]
    shown = rows(browser, "table-budgets")
    assert shown == budget_rows(document)
    assert rows(browser, "table-anomalies") == anomaly_rows(document)
    assert budget_bars(browser) == expected_bars(document)
    # Each answer says when it was made: the page's was a moment before the test's.
    assert re.fullmatch(
        r"Enforcement off\. As of \d{4}-\d\d-\d\dT[\d:.]+\+00:00\.",
        text(browser, "budgets-enforcement"),
    )
    assert "budget" not in text(browser, "notices").lower()  # no drops, no failures

    # The figures are the demo's: its whole spend is today's (unless the day began while
    # the fixture ran), over the $0.01 daily total; the tag no request carries is at 0.
    team, per_user, per_model, beta = document["budgets"]
    assert beta["entries"][0]["requests"] == 0
    today = datetime.fromisoformat(team["period_start"])
    if datetime.now(timezone.utc) - today > timedelta(minutes=10):
        assert shown[0] == [
            "team-daily",
            "total",
            "(all)",
            f"day ({team['timezone']})",
            team["period_end"],
            f"${DEMO_TOTAL} + unknown (1 unpriced)",  # as the costs answer: the same
            "$0.01",
            "118.4 %",  # the API rounds utilization to 4 places: 1.184
            "exceeded (80 %, 100 %)",
            "12",  # the store's generations: the demo's 11 and the unknown model's
        ]
        assert per_user["entries"] and all(entry["status"] != "ok" for entry in per_user["entries"])
    assert shown[-1][:3] == ["beta-feature", "tag beta", "beta"]
    assert shown[-1][5:9] == ["$0", "$1", "0 %", "ok"]
    assert per_model["entries"] == []  # $100 a month: no model near a threshold
    panel = browser.find_element("id", "panel-budgets")
    assert panel.screenshot(str(artifacts / "dashboard-budgets.png"))


def test_serve_with_budgets_gives_the_page_its_endpoint(served_with_budgets: Served) -> None:
    page = served_with_budgets.api.get("/")
    assert page.status_code == 200 and 'id="panel-budgets"' in page.text
    document = served_with_budgets.answer("budgets")
    assert len(document["budgets"]) == 4 and len(document["anomalies"]) == 1


def test_telemetry_asgi_app_with_budgets_gives_the_page_its_endpoint(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from otel_gemini import configure

    rules = tmp_path / "budgets.toml"
    rules.write_text(BUDGET_RULES)
    telemetry = configure(
        tracer_provider=TracerProvider(),
        cost_store=tmp_path / "costs.sqlite3",
        budgets=rules,
        langfuse=False,
        health_probe=False,
    )
    try:
        client = TestClient(telemetry.asgi_app())
        assert 'id="panel-budgets"' in client.get("/").text
        answer = client.get("/api/observability/budgets")
        assert answer.status_code == 200
        assert [rule["rule"] for rule in answer.json()["budgets"]][:1] == ["team-daily"]
    finally:
        telemetry.shutdown()


@pytest.mark.browser
def test_user_supplied_text_is_shown_as_text_never_html(browser: Any, served: Served) -> None:
    open_page(browser, f"{served.url}/")
    users = rows(browser, "table-top-users")
    assert users[-1][1:3] == [HOSTILE, "unknown"]  # unknown cost: last of the top users
    sessions = [row[1] for row in rows(browser, "table-top-sessions")]
    assert HOSTILE in sessions
    # In the charts too (plotly.js reads some HTML in labels: the page escapes it).
    assert HOSTILE in text(browser, "chart-top-users")
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert browser.execute_script("return window.__pwned === undefined") is True


@pytest.mark.browser
def test_a_phone_width_needs_no_sideways_scrolling(
    browser: Any, served: Served, artifacts: Path
) -> None:
    browser.set_window_size(390, 844)  # a phone, portrait
    try:
        open_page(browser, f"{served.url}/")
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        assert text(browser, "total-cost") == f"${DEMO_TOTAL} + unknown (1 unpriced)"
        browser.save_screenshot(str(artifacts / "dashboard-phone.png"))
    finally:
        browser.set_window_size(1280, 1600)


@pytest.mark.browser
def test_the_langfuse_source_shows_the_same_figures(
    browser: Any, served: Served, artifacts: Path
) -> None:
    open_page(browser, f"{served.url}/?source=langfuse")
    by_model = assert_page_matches_api(browser, served, source="langfuse")
    assert by_model["source"] == "langfuse" and not by_model["stale"]
    # The demo's generations, priced by us: the same total as the local store's.
    assert text(browser, "total-cost") == f"${DEMO_TOTAL}"
    assert rows(browser, "table-top-users")[0][1] == "ben"
    assert browser.find_element("id", "filter-source").get_attribute("value") == "langfuse"
    browser.save_screenshot(str(artifacts / "dashboard-langfuse.png"))


@pytest.mark.browser
def test_a_bad_filter_shows_the_apis_message_in_the_page(browser: Any, served: Served) -> None:
    open_page(browser, f"{served.url}/?tz=Mars/Base")
    refused = served.api.get("/api/observability/costs", params={"tz": "Mars/Base"}).json()
    assert refused["parameter"] == "tz"
    assert f"HTTP 400 (tz): {refused['message']}" in text(browser, "notices")
    assert refused["message"] in text(browser, "table-by-model")
    assert text(browser, "total-cost") == "—"  # not $0


CANNED_RULES = """
[[budget]]
name = "monthly <i>team</i>"
period = "month"
limit_usd = "0.06"

[[budget]]
name = "per-user-daily"
scope = "user"
limit_usd = "0.003"

[[anomaly]]
name = "cost-per-request"
by = "model"
ratio = 3
min_requests = 2
"""
CANNED_NOW = datetime(2026, 11, 21, 23, 59, tzinfo=timezone.utc)


def _canned_answers_app(budgets_document: dict[str, Any] | None) -> Any:
    """The page's questions answered with fixed documents: a window with spans dropped by
    the store (every costs answer says 3), a degraded pipeline, and the budgets endpoint
    answering ``budgets_document`` (``None``: 503, no store)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from otel_gemini.server._dashboard import dashboard_routes

    head = {"source": "local", "requested_source": "local", "stale": False, "dropped": 3}
    window = {"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z", "tz": "UTC"}
    totals = {
        "cost": "0.5",
        "input_cost": "0.2",
        "output_cost": "0.3",
        "input_tokens": 1000,
        "output_tokens": 100,
        "total_tokens": 1100,
        "requests": 2,
        "unpriced_requests": 0,
        "errors": 0,
    }

    async def costs(request: Request) -> JSONResponse:
        groups = (
            [{"model": "gemini-2.5-pro", **totals}]
            if request.query_params.get("group_by") == "model"
            else []
        )
        return JSONResponse({**head, **window, "groups": groups, "total": totals})

    async def latency(request: Request) -> JSONResponse:
        return JSONResponse({**head, **window, "groups": []})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "degraded", "reasons": ["<b>Langfuse</b> is slow"]})

    async def budgets(request: Request) -> JSONResponse:
        if budgets_document is None:
            return JSONResponse(
                {"error": "unavailable", "message": "there is no cost store at '/x'"},
                status_code=503,
            )
        # The store dropped 3 in every window, as every costs answer says.
        rules = [{**rule, "dropped": 3} for rule in budgets_document["budgets"]]
        return JSONResponse({**budgets_document, "budgets": rules})

    routes = [
        Route("/api/observability/costs", costs),
        Route("/api/observability/latency", latency),
        Route("/api/observability/health", health),
        Route("/api/observability/budgets", budgets),
    ]
    return Starlette(routes=[*routes, *dashboard_routes()])


@contextmanager
def canned_page(browser: Any, budgets_document: dict[str, Any] | None) -> Iterator[None]:
    from otel_gemini.testing._uvicorn_thread import UvicornThread

    server = UvicornThread(_canned_answers_app(budgets_document), name="canned-answers")
    server.start()
    try:
        open_page(browser, f"http://127.0.0.1:{server.port}/")
        yield
    finally:
        server.stop()


@pytest.fixture(scope="module")
def canned_budgets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """budget_status()'s real answer over the test workload's store, at a moment in it."""
    from otel_gemini.budgets import BudgetRules, budget_status

    path = tmp_path_factory.mktemp("canned-budgets") / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS, store)
    store.shutdown(10_000)
    return budget_status(BudgetRules.parse(CANNED_RULES), path, now=CANNED_NOW)


@pytest.mark.browser
def test_dropped_spans_budgets_and_health_reasons_are_shown(
    browser: Any, canned_budgets: dict[str, Any]
) -> None:
    with canned_page(browser, canned_budgets):
        assert text(browser, "dropped-mark") == "⚠ 3 dropped"
        assert "⚠ 3 spans were dropped by the cost store in this window" in text(browser, "notices")
        assert text(browser, "total-cost") == "$0.5"
        assert browser.find_element("id", "panel-budgets").get_attribute("hidden") is None
        # Every rule's period had drops: each spend is flagged as a lower bound (≥).
        # The workload's whole spend is November's; alice alone is over $0.003 on the 21st.
        team, per_user = canned_budgets["budgets"]
        month = workload_money(sum(call.cost for call in CALLS))
        assert (team["entries"][0]["spend_usd"], month) == ("0.05120125", "0.05120125")
        assert [(e["scope_value"], e["spend_usd"]) for e in per_user["entries"]] == [
            ("alice", "0.0229745")
        ]
        shown = rows(browser, "table-budgets")
        assert shown == budget_rows(canned_budgets, lower_bound=True)
        assert shown[0][5:9] == [
            "≥ $0.05120125",  # the two failed requests (no usage) cost nothing: not unknown
            "$0.06",
            "85.34 %",
            "warning (80 %)",
        ]
        assert shown[1][2:3] + shown[1][5:9] == [
            "alice",
            "≥ $0.0229745",
            "$0.003",
            "765.82 %",  # 7.6582: the API rounds utilization to 4 places
            "exceeded (80 %, 100 %)",
        ]
        assert budget_bars(browser) == expected_bars(canned_budgets, lower_bound=True)
        assert rows(browser, "table-anomalies") == anomaly_rows(canned_budgets)
        for rule in canned_budgets["budgets"]:
            assert (
                f"⚠ budget {rule['rule']}: the cost store dropped 3 generations between "
                f"{rule['period_start']} and {rule['period_end']}"
            ) in text(browser, "notices")
        assert text(browser, "health-status") == "degraded"
        assert text(browser, "health-reasons") == "<b>Langfuse</b> is slow"
        assert (
            browser.execute_script("return document.querySelectorAll('main b, main i').length") == 0
        )


@pytest.mark.browser
def test_a_budgets_endpoint_that_cannot_answer_shows_its_message(browser: Any) -> None:
    with canned_page(browser, None):
        assert browser.find_element("id", "panel-budgets").get_attribute("hidden") is None
        message = "budgets: HTTP 503: there is no cost store at '/x'"
        assert message in text(browser, "notices")
        assert text(browser, "table-budgets") == message
        assert text(browser, "total-cost") == "$0.5"  # the other panels still draw


# --- without a browser: what the page and its files are served with --------------------------


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path = tmp_path_factory.mktemp("dashboard-app") / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS, store)
    store.shutdown(10_000)
    with TestClient(observability_app(CostAnswers(LocalCostSource(path)))) as client:
        yield client


def test_the_page_forbids_inline_and_remote_scripts(app_client: TestClient) -> None:
    for path in ("/", "/dashboard"):
        page = app_client.get(path)
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "script-src 'self';" in CONTENT_SECURITY_POLICY
        assert page.headers["cache-control"] == "no-cache"
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
        assert scripts and all(not body.strip() for _, body in scripts)  # no inline script
        sources = [re.search(r'src="([^"]+)"', attributes) for attributes, _ in scripts]
        assert all(
            found and found.group(1).startswith("api/observability/assets/") for found in sources
        )


def test_assets_are_versioned_cached_and_compressed(app_client: TestClient) -> None:
    page = app_client.get("/").text
    names = re.findall(r'(?:src|href)="(api/observability/assets/[^"]+)"', page)
    assert {Path(name).suffix for name in names} == {".css", ".js"}
    plotly = next(name for name in names if "/plotly-" in name)
    import plotly as plotly_package

    assert plotly.endswith(f"/plotly-{plotly_package.__version__}.min.js")
    for name in names:
        compressed = app_client.get(f"/{name}", headers={"Accept-Encoding": "gzip"})
        assert compressed.status_code == 200
        assert compressed.headers["cache-control"] == "max-age=31536000, immutable"
        assert compressed.headers["content-encoding"] == "gzip"
        plain = app_client.get(f"/{name}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == compressed.content  # httpx decoded the gzip one
    missing = app_client.get("/api/observability/assets/../../etc/passwd")
    assert missing.status_code == 404


def test_the_page_is_behind_the_same_token_as_the_api(tmp_path: Path) -> None:
    path = tmp_path / "costs.sqlite3"
    CostStore(path, retention_days=0).shutdown(1000)
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token-for-the-page\n")
    tokens.chmod(0o600)
    app = observability_app(CostAnswers(LocalCostSource(path)), auth=tokens)
    with TestClient(app) as client:
        assert client.get("/").status_code == 401
        assert client.get("/dashboard").status_code == 401
        assert client.get("/api/observability/assets/x.js").status_code == 401
        page = client.get("/", headers={"Authorization": "Bearer s3cret-token-for-the-page"})
        assert page.status_code == 200


def test_top_keeps_the_costliest_groups_and_the_whole_total(app_client: TestClient) -> None:
    every = app_client.get("/api/observability/costs", params={"group_by": "user", **WINDOW})
    top = app_client.get(
        "/api/observability/costs", params={"group_by": "user", "top": "2", **WINDOW}
    )
    assert every.status_code == top.status_code == 200
    groups = every.json()["groups"]
    ranked = sorted(groups, key=lambda group: -Decimal(group["cost"]))
    assert len(groups) > 2
    assert top.json()["groups"] == ranked[:2]
    assert (top.json()["top"], top.json()["group_count"]) == (2, len(groups))
    assert top.json()["total"] == every.json()["total"]
    for bad in ("0", "1001", "ten", "-1", "2.5", "\u00b2", "9" * 5000):
        answer = app_client.get("/api/observability/costs", params={"top": bad})
        assert answer.status_code == 400
        assert answer.json()["parameter"] == "top"
        assert len(answer.text) < 600  # the bad value is quoted cut short, not echoed whole
    assert app_client.get("/api/observability/latency", params={"top": "2"}).status_code == 400


def test_serve_open_opens_the_page_in_the_users_browser(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    CostStore(db, retention_days=0).shutdown(1000)
    opened = tmp_path / "opened.txt"
    recorder = tmp_path / "browser.py"
    recorder.write_text(
        f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])\n"
    )
    serve = subprocess.Popen(
        [*SERVE, "--db", str(db), "--port", "0", "--no-export", "--open"],
        # webbrowser runs $BROWSER with the URL in place of %s
        env=_environment(tmp_path, BROWSER=f"{sys.executable} {recorder} %s"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert serve.stderr is not None
        banner = serve.stderr.readline()
        found = re.search(r"dashboard (http://127\.0\.0\.1:\d+/)", banner)
        assert found, banner
        wait_until(lambda: opened.exists() and opened.read_text() != "", what="the browser")
        assert opened.read_text() == found.group(1)
        assert httpx.get(found.group(1), timeout=10).status_code == 200
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def test_the_page_works_under_a_mount_prefix(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    path = tmp_path / "costs.sqlite3"
    CostStore(path, retention_days=0).shutdown(1000)
    host = Starlette(
        routes=[Mount("/observability", observability_app(CostAnswers(LocalCostSource(path))))]
    )
    with TestClient(host) as client:
        bare = client.get("/observability", follow_redirects=False)
        assert (bare.status_code, bare.headers.get("location")) == (
            307,
            "http://testserver/observability/",
        )
        page = client.get("/observability/")
        assert page.status_code == 200
        # Relative URLs: the page's files and questions resolve under the prefix.
        for name in re.findall(r'(?:src|href)="(api/observability/assets/[^"]+)"', page.text):
            assert client.get(f"/observability/{name}").status_code == 200
        assert client.get("/observability/api/observability/costs").status_code == 200


def test_without_plotly_the_page_loads_no_chart_script(monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_gemini.server import _dashboard

    monkeypatch.setattr(_dashboard, "plotly_js", lambda: None)
    dashboard = _dashboard.Dashboard()
    page = dashboard.page.decode()
    assert "plotly" not in re.sub(r"<!--.*?-->", "", page, flags=re.S).lower()
    assert sorted(Path(name).suffix for name in dashboard.assets) == [".css", ".js"]
    # dashboard.js then says so and opens every table (it draws with window.Plotly only).
    script = (Path(_dashboard.__file__).parent / "dashboard" / "dashboard.js").read_text()
    assert "Charts need plotly.js, from the plotly package" in script
