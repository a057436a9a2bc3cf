"""source=langfuse: the API asks the (fake) Langfuse Metrics API with the exact queries
Langfuse's rules allow, and answers from the local store, saying so, when it cannot."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cost_workload import CALLS, WINDOW, expected_costs, inclusive_percentiles, record
from opentelemetry.sdk.trace import SynchronousMultiSpanProcessor
from starlette.testclient import TestClient

from otel_gemini.aggregate import CostAnswers, CostStore, LangfuseMetricsSource, LocalCostSource
from otel_gemini.export import LangfuseExporter
from otel_gemini.server import observability_app
from otel_gemini.testing import FakeLangfuse
from otel_gemini.testing._uvicorn_thread import UvicornThread

BILLED = {
    "column": "type",
    "operator": "any of",
    "value": ["GENERATION", "EMBEDDING"],
    "type": "stringOptions",
}
COST_METRICS = [
    {"measure": "count", "aggregation": "count"},
    {"measure": "totalCost", "aggregation": "sum"},
    {"measure": "inputCost", "aggregation": "sum"},
    {"measure": "outputCost", "aggregation": "sum"},
    {"measure": "inputTokens", "aggregation": "sum"},
    {"measure": "outputTokens", "aggregation": "sum"},
    {"measure": "totalTokens", "aggregation": "sum"},
]
ROW_LIMIT = {"row_limit": 1000}


@dataclass
class Setup:
    langfuse: FakeLangfuse
    api: httpx.Client

    def ask(self, path: str, **params: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The API's answer and the Metrics API queries it made."""
        before = len(self.langfuse.metrics.queries)
        response = self.api.get(f"/api/observability/{path}", params={**WINDOW, **params})
        assert response.status_code == 200, response.text
        return response.json(), self.langfuse.metrics.queries[before:]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory: Path = tmp_path_factory.mktemp("langfuse-api")
    with FakeLangfuse() as langfuse:
        exporter = LangfuseExporter(spool_dir=directory / "spool", **langfuse.exporter_settings())
        store = CostStore(directory / "costs.sqlite3", retention_days=0)
        fan_out = SynchronousMultiSpanProcessor()
        fan_out.add_span_processor(exporter.span_processor())
        fan_out.add_span_processor(store)
        record(CALLS, fan_out)
        langfuse.wait_for_spans(len(CALLS))
        exporter.shutdown(10_000)
        store.shutdown(10_000)
        source = LangfuseMetricsSource(
            langfuse.base_url, langfuse.public_key, langfuse.secret_key, timeout=3
        )
        answers = CostAnswers(LocalCostSource(store.path), source, default_source="langfuse")
        server = UvicornThread(observability_app(answers), name="api")
        server.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=15) as api:
                yield Setup(langfuse, api)
        finally:
            server.stop()
            answers.close()


def from_langfuse(group_by: tuple[str, ...], **options: Any) -> list[dict[str, Any]]:
    """What Langfuse can tell: no unpriced or error counts in cost groups."""
    return [
        {**group, "unpriced_requests": None, "errors": None}
        for group in expected_costs(group_by, **options)
    ]


def test_costs_by_model(setup: Setup) -> None:
    document, queries = setup.ask("costs", group_by="model", source="langfuse")
    assert queries == [
        {
            "view": "observations",
            "dimensions": [{"field": "providedModelName"}],
            "metrics": COST_METRICS,
            "filters": [BILLED],
            "fromTimestamp": "2026-11-19T00:00:00.000Z",
            "toTimestamp": "2026-11-24T23:59:59.999Z",
            "config": ROW_LIMIT,
        }
    ]
    assert (document["source"], document["stale"]) == ("langfuse", False)
    assert document["groups"] == from_langfuse(("model",))
    assert document["total"]["cost"] == expected_costs(())[0]["cost"]


def test_costs_by_user_is_a_top_n_query(setup: Setup) -> None:
    document, queries = setup.ask("costs", group_by="user,model")
    assert queries == [
        {
            "view": "observations",
            "dimensions": [{"field": "userId"}, {"field": "providedModelName"}],
            "metrics": COST_METRICS,
            "filters": [BILLED],
            "fromTimestamp": "2026-11-19T00:00:00.000Z",
            "toTimestamp": "2026-11-24T23:59:59.999Z",
            "orderBy": [{"field": "sum_totalCost", "direction": "desc"}],
            "config": ROW_LIMIT,
        }
    ]
    assert document["groups"] == from_langfuse(("user", "model"))


def test_one_user_per_day_is_a_user_filter_with_a_day_time_dimension(setup: Setup) -> None:
    document, queries = setup.ask("costs", group_by="day", user="alice")
    assert queries == [
        {
            "view": "observations",
            "dimensions": [],
            "metrics": COST_METRICS,
            "filters": [
                BILLED,
                {"column": "userId", "operator": "=", "value": "alice", "type": "string"},
            ],
            "timeDimension": {"granularity": "day"},
            "fromTimestamp": "2026-11-19T00:00:00.000Z",
            "toTimestamp": "2026-11-24T23:59:59.999Z",
            "config": ROW_LIMIT,
        }
    ]
    assert document["groups"] == from_langfuse(("day",), keep=lambda call: call.user == "alice")


def test_every_user_per_day_asks_day_by_day(setup: Setup) -> None:
    document, queries = setup.ask("costs", group_by="user,day")
    days = ["19", "20", "21", "22", "23", "24"]
    assert [(q["fromTimestamp"], q["toTimestamp"]) for q in queries] == [
        (f"2026-11-{day}T00:00:00.000Z", f"2026-11-{day}T23:59:59.999Z") for day in days
    ]
    for query in queries:
        assert query["dimensions"] == [{"field": "userId"}]
        assert "timeDimension" not in query
        assert query["orderBy"] == [{"field": "sum_totalCost", "direction": "desc"}]
        assert query["config"] == ROW_LIMIT
    assert document["groups"] == from_langfuse(("user", "day"))


def test_days_in_another_time_zone_are_asked_day_by_day(setup: Setup) -> None:
    document, queries = setup.ask("costs", group_by="day,model", tz="Europe/Paris")
    # Paris is UTC+1 in November: local days run from 23:00 UTC; the window clips both ends.
    bounds = [(q["fromTimestamp"], q["toTimestamp"]) for q in queries]
    assert bounds == [
        ("2026-11-19T00:00:00.000Z", "2026-11-19T22:59:59.999Z"),
        *(
            (f"2026-11-{day - 1}T23:00:00.000Z", f"2026-11-{day}T22:59:59.999Z")
            for day in range(20, 25)
        ),
        ("2026-11-24T23:00:00.000Z", "2026-11-24T23:59:59.999Z"),
    ]
    assert all(query["dimensions"] == [{"field": "providedModelName"}] for query in queries)
    assert document["groups"] == from_langfuse(("day", "model"), zone="Europe/Paris")


def test_latency_percentiles_and_errors(setup: Setup) -> None:
    document, queries = setup.ask("latency", group_by="model")
    latency_query, errors_query = queries
    assert latency_query["metrics"] == [
        {"measure": "count", "aggregation": "count"},
        *(
            {"measure": "latency", "aggregation": aggregation}
            for aggregation in ("p50", "p95", "p99", "avg", "max")
        ),
        *(
            {"measure": "timeToFirstToken", "aggregation": aggregation}
            for aggregation in ("count", "p50", "p95", "p99", "avg", "max")
        ),
    ]
    assert errors_query == {
        **{key: value for key, value in latency_query.items() if key != "metrics"},
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "filters": [
            BILLED,
            {"column": "level", "operator": "=", "value": "ERROR", "type": "string"},
        ],
    }
    assert document["source"] == "langfuse"
    for group in document["groups"]:
        calls = [call for call in CALLS if call.model == group["model"]]
        expected = inclusive_percentiles([float(call.latency_ms) for call in calls])
        expected_ttft = inclusive_percentiles(
            [float(call.ttft_ms) for call in calls if call.ttft_ms is not None]
        )
        for name in ("p50", "p95", "p99"):
            assert group["latency_ms"][name] == pytest.approx(round(expected[name], 3))
            assert group["time_to_first_token_ms"][name] == pytest.approx(
                round(expected_ttft[name], 3)
            )
        assert (group["requests"], group["errors"]) == (
            len(calls),
            sum(call.error for call in calls),
        )


def test_what_langfuse_cannot_group_by_is_400(setup: Setup) -> None:
    response = setup.api.get("/api/observability/costs", params={"group_by": "provider"})
    assert response.status_code == 400
    assert response.json()["parameter"] == "group_by"
    response = setup.api.get(
        "/api/observability/costs", params={"source": "local", "group_by": "provider"}
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("make_it_fail", "reason"),
    [
        (lambda langfuse: langfuse.refuse_connections(), "is unreachable (ConnectError"),
        (lambda langfuse: langfuse.respond_with(503), "answered HTTP 503"),
        (lambda langfuse: langfuse.suspend_ingestion(), "answered HTTP 403"),
    ],
)
def test_when_langfuse_cannot_answer_the_local_store_does(
    setup: Setup, make_it_fail: Any, reason: str
) -> None:
    make_it_fail(setup.langfuse)
    try:
        document, queries = setup.ask("costs", group_by="user,model")
        latency, _ = setup.ask("latency")
    finally:
        setup.langfuse.up()
        setup.langfuse.suspend_ingestion(False)
    assert len(queries) == (0 if "unreachable" in reason else 1)
    assert document["source"] == "local"
    assert document["requested_source"] == "langfuse"
    assert document["stale"] is True
    assert reason in document["stale_reason"]
    assert "local cost store" in document["stale_reason"]
    assert document["groups"] == expected_costs(("user", "model"))
    assert (latency["source"], latency["stale"]) == ("local", True)
    # And once Langfuse is back, it answers again.
    document, _ = setup.ask("costs", group_by="model")
    assert (document["source"], document["stale"]) == ("langfuse", False)


def test_without_a_local_store_an_unreachable_langfuse_is_503(setup: Setup) -> None:
    langfuse = setup.langfuse
    source = LangfuseMetricsSource(langfuse.base_url, langfuse.public_key, langfuse.secret_key)
    langfuse.refuse_connections()
    try:
        with TestClient(observability_app(CostAnswers(langfuse=source))) as client:
            response = client.get("/api/observability/costs", params=WINDOW)
    finally:
        langfuse.up()
        source.close()
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "unavailable"
    assert "unreachable" in body["message"]
    assert langfuse.secret_key not in body["message"]


def test_an_unreachable_langfuse_with_a_missing_store_is_503_not_zero(
    setup: Setup, tmp_path: Path
) -> None:
    # What `serve --source langfuse` builds from the environment when the store path holds
    # nothing: the fallback must not answer $0 (stale) from a store that does not exist.
    langfuse = setup.langfuse
    source = LangfuseMetricsSource(langfuse.base_url, langfuse.public_key, langfuse.secret_key)
    missing = tmp_path / "never-written.sqlite3"
    answers = CostAnswers(LocalCostSource(missing), source, default_source="langfuse")
    langfuse.refuse_connections()
    try:
        with TestClient(observability_app(answers)) as client:
            costs = client.get("/api/observability/costs", params=WINDOW)
            latency = client.get("/api/observability/latency", params=WINDOW)
    finally:
        langfuse.up()
        source.close()
    for response in (costs, latency):
        assert response.status_code == 503
        message = response.json()["message"]
        assert "unreachable" in message and "there is no cost store at" in message
        assert str(missing) in message and langfuse.secret_key not in message
    assert not missing.exists()


def test_an_sdk_without_langfuse_api_names_the_version_needed(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # langfuse 3.x has no langfuse.api.client.LangfuseAPI (its client asks the v1 Metrics API).
    monkeypatch.setitem(sys.modules, "langfuse.api.client", None)
    langfuse = setup.langfuse
    source = LangfuseMetricsSource(langfuse.base_url, langfuse.public_key, langfuse.secret_key)
    try:
        with TestClient(observability_app(CostAnswers(langfuse=source))) as client:
            response = client.get("/api/observability/costs", params=WINDOW)
    finally:
        source.close()
    assert response.status_code == 503
    assert "needs the langfuse SDK 4.0 or newer" in response.json()["message"]
