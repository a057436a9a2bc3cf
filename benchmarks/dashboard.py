"""The dashboard's time to interactive in headless Chromium, on stores of growing size,
against the same page on a 100-row store measured in the same run (the baseline: what the
page, plotly.js, its seven charts and the browser cost when the answers cost next to nothing).

For each store (a synthetic month: 2,000 users, one session per user per day, 4 models,
rows written straight into the store's table with one ``executemany`` per 10,000), it starts
``otel-gemini serve --db STORE``, loads the page once to warm the browser's cache (plotly.js
is cached for good: its name carries its version), then loads it ``rounds`` times and
prints the median of what the page itself records (``document.body.dataset``):

- ``ready``: navigation start to every panel drawn (time to interactive);
- ``api``: first answers request sent to last answer received (the 8 requests run in
  parallel);
- ``page``: the rest, ``ready - api``: HTML and CSS before the first question, and drawing
  the tables and charts after the last answer (plotly.js is parsed while the questions are
  answered);
- ``draw``: of which drawing, from the last answer to every panel drawn;
- ``first view``: ``ready`` of the very first load, right after serve started, while it
  builds the store's rollups in the background (answers then read the raw rows); the
  other figures are measured once the build has finished.

It also times the same 8 answers over plain HTTP, one after another (``http``), which is
the answers API's own cost, whatever the page does.

    python benchmarks/dashboard.py [--rounds N] [--budgets] [rows ...]  # 5 rounds; 10k 100k
    python benchmarks/dashboard.py --rounds 2 1000000

``--budgets`` serves every store (the baseline's too) with budget rules (a daily total, a
daily per-user cap, a monthly per-model budget, an anomaly rule), so the page also draws its
Budgets panel from the budgets answer (which carries the store's drops in each rule's
period).

Needs Debian's chromium and chromium-driver (``make browser``) and selenium (dev extra).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from otel_gemini.aggregate._rollups import ROLLUP_VERSION
from otel_gemini.aggregate._rows import COLUMNS
from otel_gemini.aggregate._schema import UPSERT, open_for_writing

USERS = 2000
DAYS = 30
MODELS = (
    ("gemini-2.5-flash", 300_000, 2_500_000),  # femto-USD per token: input, output
    ("gemini-2.5-pro", 1_250_000, 10_000_000),
    ("gemini-2.5-flash-lite", 100_000, 400_000),
    ("gemini-2.5-flash-native-audio-preview-09-2025", 500_000, 2_000_000),
)
BASELINE_ROWS = 100
BUDGET_RULES = """
[[budget]]
name = "team-daily"
limit_usd = 50

[[budget]]
name = "per-user-daily"
scope = "user"
limit_usd = "0.05"

[[budget]]
name = "per-model-monthly"
scope = "model"
period = "month"
limit_usd = 500

[[anomaly]]
name = "cost-per-request"
by = "model"
"""
SERVE = (sys.executable, "-m", "otel_gemini.cli", "serve")
# What the page asks for on load (dashboard.js), for the plain-HTTP timing.
PAGE_QUESTIONS = (
    ("costs", {"group_by": "model"}),
    ("costs", {"group_by": "day,model"}),
    ("costs", {"group_by": "user", "top": "10"}),
    ("costs", {"group_by": "session", "top": "10"}),
    ("latency", {"group_by": "model"}),
    ("latency", {"group_by": "day,model"}),
    ("health", {}),
    ("budgets", {}),
)


def build_store(path: Path, rows: int, now_ns: int) -> None:
    """``rows`` priced generations spread over the last ``DAYS`` days."""
    randomness = random.Random(20)
    connection = open_for_writing(path)
    span = DAYS * 86_400 * 10**9
    batch: list[tuple[Any, ...]] = []
    assert COLUMNS[22:] == ("error_type", "service_name", "tags", "request_model")
    for index in range(rows):
        start = now_ns - span + (span * index) // max(rows, 1)
        user = randomness.randrange(USERS)
        model, input_price, output_price = MODELS[index % len(MODELS)]
        tokens_in = randomness.randrange(50, 4000)
        tokens_out = randomness.randrange(10, 800)
        input_cost = tokens_in * input_price
        output_cost = tokens_out * output_price
        latency = randomness.lognormvariate(6.5, 0.5)
        error = randomness.random() < 0.01
        batch.append(
            (
                f"{index:032x}",
                f"{index:016x}",
                start,
                start + int(latency * 1e6),
                f"user-{user}",
                f"session-{user}-{(start - now_ns + span) // 86_400_000_000_000}",
                model,
                "gcp.gemini",
                "generate_content",
                tokens_in,
                tokens_out,
                tokens_in + tokens_out,
                json.dumps({"input": tokens_in, "output": tokens_out}),
                0 if error else input_cost + output_cost,
                0 if error else input_cost,
                0 if error else output_cost,
                None,
                "priced",
                "bench",
                latency,
                latency / 4 if index % 3 == 0 else None,
                int(error),
                "503" if error else None,
                "bench-service",  # service_name
                None,  # tags
                None,  # request_model (the model answering is the one asked for)
            )
        )
        if len(batch) == 10_000:
            with connection:
                connection.executemany(UPSERT, batch)
            batch.clear()
    with connection:
        connection.executemany(UPSERT, batch)
    connection.close()


def start_serve(db: Path, budgets: Path | None) -> tuple[subprocess.Popen[str], str]:
    rules = ["--budgets", str(budgets)] if budgets else []
    serve = subprocess.Popen(
        [*SERVE, "--db", str(db), "--port", "0", "--no-export", "--log-level", "warning", *rules],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert serve.stderr is not None
    banner = serve.stderr.readline()
    found = re.search(r"dashboard (http://127\.0\.0\.1:\d+)/", banner)
    if not found:
        serve.kill()
        raise SystemExit(f"serve did not start: {banner}")
    return serve, found.group(1)


def wait_for_rollups(db: Path, timeout: float = 1800) -> None:
    """Polls (with a deadline) until serve's background build has folded every row."""
    deadline = time.monotonic() + timeout
    while True:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            done = connection.execute(
                "SELECT folded_rowid >= (SELECT ifnull(max(rowid), 0) FROM generations) "
                "FROM rollup_state WHERE version = ?",
                (ROLLUP_VERSION,),
            ).fetchone()
        except sqlite3.OperationalError:
            done = None  # not created yet
        finally:
            connection.close()
        if done and done[0]:
            return
        if time.monotonic() > deadline:
            raise SystemExit("serve did not build the rollups in time")
        time.sleep(0.2)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        raise SystemExit("needs chromium and chromedriver: make browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def page_load(session: Any, url: str) -> dict[str, float]:
    session.get(url)
    deadline = time.monotonic() + 300
    while True:  # polling with a deadline: the page says when it is drawn
        state = session.execute_script("return document.body.dataset.state")
        if state in ("ready", "failed"):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"the page did not get ready: {state}")
        time.sleep(0.005)
    if state != "ready":
        raise SystemExit("the page failed to draw")
    data = session.execute_script("return Object.assign({}, document.body.dataset)")
    ready, api = float(data["readyMs"]), float(data["apiMs"])
    return {"ready": ready, "api": api, "page": ready - api, "draw": float(data["renderMs"])}


def http_answers(url: str) -> float:
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        for path, params in PAGE_QUESTIONS:
            client.get(f"/api/observability/{path}", params=params)
        return (time.perf_counter() - started) * 1000


def measure(session: Any, db: Path, rounds: int, budgets: Path | None) -> dict[str, float]:
    serve, url = start_serve(db, budgets)
    try:
        # The first view, while serve builds the rollups in the background (the answers
        # read the raw rows meanwhile); then the page once they are built.
        first = page_load(session, f"{url}/")["ready"]
        wait_for_rollups(db)
        # Warm-up: the browser caches plotly.js (and, from its second run, its compiled
        # code); SQLite's pages get into the OS cache.
        for _ in range(2):
            page_load(session, f"{url}/")
        loads = [page_load(session, f"{url}/") for _ in range(rounds)]
        figures = {name: statistics.median(load[name] for load in loads) for name in loads[0]}
        figures["http"] = statistics.median(http_answers(url) for _ in range(rounds))
        figures["first"] = first
        return figures
    finally:
        serve.terminate()
        serve.wait(30)


def main() -> None:
    arguments = sys.argv[1:]
    rounds = 5
    if arguments[:1] == ["--rounds"]:
        rounds, arguments = int(arguments[1]), arguments[2:]
    with_budgets = arguments[:1] == ["--budgets"]
    arguments = arguments[1:] if with_budgets else arguments
    sizes = [int(argument) for argument in arguments] or [10_000, 100_000]
    now_ns = time.time_ns()
    session = browser()
    try:
        with tempfile.TemporaryDirectory(prefix="otel-gemini-dashboard-") as directory:
            budgets = Path(directory) / "budgets.toml" if with_budgets else None
            if budgets is not None:
                budgets.write_text(BUDGET_RULES)
            stores = {BASELINE_ROWS: Path(directory) / "baseline.sqlite3"}
            build_store(stores[BASELINE_ROWS], BASELINE_ROWS, now_ns)
            for rows in sizes:
                stores[rows] = Path(directory) / f"rows-{rows}.sqlite3"
                started = time.perf_counter()
                build_store(stores[rows], rows, now_ns)
                print(f"built a {rows:,}-row store in {time.perf_counter() - started:.1f} s")
            print(f"median of {rounds} page loads (cache warm), milliseconds")
            print(
                f"{'rows':>10} {'ready':>8} {'api':>8} {'page':>8} {'draw':>8} {'http':>8} "
                f"{'ready/base':>10} {'page/base':>10} {'first view':>10}"
            )
            baseline = measure(session, stores[BASELINE_ROWS], rounds, budgets)
            for rows, path in stores.items():
                figures = (
                    baseline if rows == BASELINE_ROWS else measure(session, path, rounds, budgets)
                )
                print(
                    f"{rows:>10,} {figures['ready']:>8.0f} {figures['api']:>8.0f} "
                    f"{figures['page']:>8.0f} {figures['draw']:>8.0f} {figures['http']:>8.0f} "
                    f"{figures['ready'] / baseline['ready']:>9.2f}x "
                    f"{figures['page'] / baseline['page']:>9.2f}x "
                    f"{figures['first']:>10.0f}"
                )
    finally:
        session.quit()


if __name__ == "__main__":
    main()
