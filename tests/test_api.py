"""The observability HTTP API over a real uvicorn server on loopback, answering from the
local cost store: grouping, filters, time zones, percentiles, validation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cost_workload import (
    CALLS,
    WINDOW,
    Call,
    expected_costs,
    inclusive_percentiles,
    money,
    record,
)
from starlette.testclient import TestClient

from otel_gemini.aggregate import CostAnswers, CostStore, LocalCostSource, parse_cost_query
from otel_gemini.server import observability_app
from otel_gemini.testing._uvicorn_thread import UvicornThread


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    path = tmp_path_factory.mktemp("api") / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS, store)
    store.shutdown(10_000)
    server = UvicornThread(observability_app(CostAnswers(LocalCostSource(path))), name="api")
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
            yield client
    finally:
        server.stop()


def costs(api: httpx.Client, **params: str) -> dict[str, Any]:
    response = api.get("/api/observability/costs", params={**WINDOW, **params})
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def groups(document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(document["groups"])


@pytest.mark.parametrize(
    "group_by",
    [
        ("user",),
        ("model",),
        ("provider",),
        ("session",),
        ("day",),
        ("user", "day", "model"),
        ("model", "user"),
        ("session", "day"),
    ],
)
def test_costs_grouped(api: httpx.Client, group_by: tuple[str, ...]) -> None:
    document = costs(api, group_by=",".join(group_by))
    assert groups(document) == expected_costs(group_by)
    assert document["group_by"] == list(group_by)
    assert (document["source"], document["stale"], document["currency"]) == (
        "local",
        False,
        "USD",
    )
    assert (document["from"], document["to"], document["tz"]) == (
        "2026-11-19T00:00:00Z",
        "2026-11-25T00:00:00Z",
        "UTC",
    )


def test_costs_total_is_exact(api: httpx.Client) -> None:
    document = costs(api)
    [everything] = expected_costs(())
    assert groups(document) == [everything]
    assert document["total"] == everything
    # The exact sum of 27 priced generations, as a decimal string (no float rounding).
    assert everything["cost"] == money(sum((call.cost for call in CALLS), start=0 * CALLS[0].cost))
    assert everything["requests"] == 29
    assert everything["errors"] == 2


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ({"user": "alice"}, lambda call: call.user == "alice"),
        ({"model": "gemini-2.5-pro"}, lambda call: call.model == "gemini-2.5-pro"),
        ({"session": "bob-s1"}, lambda call: call.session == "bob-s1"),
        ({"provider": "gcp.gemini"}, lambda call: True),
        (
            {"from": "2026-11-21T00:00:00Z", "to": "2026-11-22T00:00:00Z"},
            lambda call: "2026-11-21T" in call.start,
        ),
        (
            {"from": "2026-11-21", "to": "2026-11-22", "tz": "Asia/Tokyo"},
            lambda call: call.day("Asia/Tokyo") == "2026-11-21",
        ),
        (
            {"user": "alice", "model": "gemini-2.5-flash"},
            lambda call: call.user == "alice" and call.model == "gemini-2.5-flash",
        ),
    ],
)
def test_costs_filtered(api: httpx.Client, params: dict[str, str], keep: Any) -> None:
    document = costs(api, group_by="user,model", **params)
    assert groups(document) == expected_costs(("user", "model"), keep=keep)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/Los_Angeles", "Asia/Kolkata"])
def test_days_follow_the_time_zone(api: httpx.Client, zone: str) -> None:
    document = costs(api, group_by="day,model", tz=zone)
    assert groups(document) == expected_costs(("day", "model"), zone)
    assert document["tz"] == zone


def test_days_are_clipped_to_the_window(api: httpx.Client) -> None:
    # From noon: the first day counts only its afternoon.
    document = costs(api, group_by="day", **{"from": "2026-11-20T12:00:00Z"})
    assert groups(document) == expected_costs(
        ("day",), keep=lambda call: call.start >= "2026-11-20T12:00:00Z"
    )


def test_a_day_across_a_dst_change_is_25_hours(tmp_path: Path) -> None:
    # Europe/Paris leaves summer time on 2026-10-25: that local day is 25 hours long.
    calls = [
        Call("u", None, "gemini-2.5-flash", "2026-10-24T22:30:00Z", 100, 10, 1),  # 00:30 CEST
        Call("u", None, "gemini-2.5-flash", "2026-10-25T22:30:00Z", 100, 20, 2),  # 23:30 CET
        Call("u", None, "gemini-2.5-flash", "2026-10-25T23:30:00Z", 100, 40, 4),  # next day
    ]
    path = tmp_path / "dst.sqlite3"
    store = CostStore(path, retention_days=0)
    record(calls, store)
    store.shutdown(10_000)
    source = LocalCostSource(path)
    query = parse_cost_query(
        {"group_by": "day", "from": "2026-10-25", "to": "2026-10-27", "tz": "Europe/Paris"},
        datetime.now(timezone.utc),
    )
    report = source.costs(query).to_dict()
    assert [(g["day"], g["input_tokens"]) for g in report["groups"]] == [
        ("2026-10-25", 30),
        ("2026-10-26", 40),
    ]


def test_latency_percentiles_by_model(api: httpx.Client) -> None:
    response = api.get("/api/observability/latency", params=WINDOW)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["group_by"] == ["model"]
    assert "linear interpolation" in document["percentile_method"]
    by_model = {group["model"]: group for group in document["groups"]}
    assert sorted(by_model) == ["gemini-2.5-flash", "gemini-2.5-pro"]
    for model, group in by_model.items():
        calls = [call for call in CALLS if call.model == model]
        latencies = [float(call.latency_ms) for call in calls]
        expected = inclusive_percentiles(latencies)
        for name in ("p50", "p95", "p99"):
            assert group["latency_ms"][name] == pytest.approx(round(expected[name], 3), abs=1e-9)
        assert group["latency_ms"]["count"] == len(calls)
        assert group["latency_ms"]["max"] == max(latencies)
        ttfts = [float(call.ttft_ms) for call in calls if call.ttft_ms is not None]
        expected_ttft = inclusive_percentiles(ttfts)
        assert group["time_to_first_token_ms"]["count"] == len(ttfts)
        for name in ("p50", "p95", "p99"):
            assert group["time_to_first_token_ms"][name] == pytest.approx(
                round(expected_ttft[name], 3), abs=1e-9
            )
        errors = sum(call.error for call in calls)
        assert (group["requests"], group["errors"]) == (len(calls), errors)
        assert group["error_rate"] == round(errors / len(calls), 6)


def test_latency_by_day_and_filtered(api: httpx.Client) -> None:
    response = api.get(
        "/api/observability/latency",
        params={**WINDOW, "group_by": "model,day", "tz": "Europe/Paris", "user": "alice"},
    )
    assert response.status_code == 200, response.text
    for group in response.json()["groups"]:
        calls = [
            call
            for call in CALLS
            if call.user == "alice"
            and call.model == group["model"]
            and call.day("Europe/Paris") == group["day"]
        ]
        expected = inclusive_percentiles([float(call.latency_ms) for call in calls])
        assert group["requests"] == len(calls)
        assert group["latency_ms"]["p50"] == pytest.approx(round(expected["p50"], 3), abs=1e-9)


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("costs", {"group_by": "colour"}, "group_by"),
        ("costs", {"group_by": "user,user"}, "group_by"),
        ("latency", {"group_by": "user"}, "group_by"),
        ("costs", {"from": "yesterday"}, "from"),
        ("costs", {"to": "2026-13-01"}, "to"),
        ("costs", {"from": "2026-11-02", "to": "2026-11-01"}, "from"),
        ("costs", {"tz": "Mars/Olympus_Mons"}, "tz"),
        ("costs", {"source": "s3"}, "source"),
        ("costs", {"source": "langfuse"}, "source"),  # not configured here
        ("costs", {"groupby": "user"}, "groupby"),
        ("costs", {"user": ""}, "user"),
        ("latency", {"tz": "+25:00"}, "tz"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    api: httpx.Client, path: str, params: dict[str, str], parameter: str
) -> None:
    response = api.get(f"/api/observability/{path}", params=params)
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["parameter"]) == ("bad_parameter", parameter)
    assert body["message"]


def test_a_repeated_parameter_is_400(api: httpx.Client) -> None:
    response = api.get("/api/observability/costs?group_by=user&group_by=day")
    assert response.status_code == 400
    assert response.json()["parameter"] == "group_by"


def test_health_without_an_exporter_is_unknown(api: httpx.Client) -> None:
    response = api.get("/api/observability/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unknown"


def _no_store(tmp_path: Path, kind: str) -> Path:
    """A path where a cost store is expected and none is (issue 17: these answered $0)."""
    path = tmp_path / f"{kind}.sqlite3"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "foreign database":
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    return path


NO_STORE = {
    "missing": "there is no cost store at",
    "directory": "is not a file",
    "empty file": "is not an otel-gemini cost store",
    "foreign database": "is not an otel-gemini cost store",
}


@pytest.mark.parametrize("kind", list(NO_STORE))
def test_no_store_is_503_naming_the_path_not_zero(tmp_path: Path, kind: str) -> None:
    path = _no_store(tmp_path, kind)
    app = observability_app(CostAnswers(LocalCostSource(path)))
    with TestClient(app) as client:
        for route in ("/api/observability/costs", "/api/observability/latency"):
            response = client.get(route, params=WINDOW)
            assert response.status_code == 503
            document = response.json()
            assert document["error"] == "unavailable"
            assert NO_STORE[kind] in document["message"]
            assert repr(str(path)) in document["message"]
    assert path.exists() == (kind != "missing")  # a query never creates the file


def test_an_empty_store_answers_no_groups(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite3"
    CostStore(path).shutdown()  # created, nothing recorded: $0 is the true answer
    app = observability_app(CostAnswers(LocalCostSource(path)))
    with TestClient(app) as client:
        document = client.get("/api/observability/costs", params=WINDOW).json()
    assert document["groups"] == []
    assert document["total"]["requests"] == 0


def test_a_model_without_a_price_is_unknown_not_zero(tmp_path: Path) -> None:
    calls = [
        Call("u", None, "gemini-2.5-flash", "2026-11-20T10:00:00Z", 100, 1000, 100),
        Call("u", None, "gemini-2.5-flash", "2026-11-20T10:01:00Z", 100, 1000, 100),
    ]
    path = tmp_path / "unknown.sqlite3"
    store = CostStore(path, retention_days=0)
    record(calls[:1], store)
    record([Call("v", None, "gemini-9-imaginary", calls[1].start, 100, 1000, 100)], store)
    store.shutdown(10_000)
    query = parse_cost_query({"group_by": "model", **WINDOW}, datetime.now(timezone.utc))
    document = LocalCostSource(path).costs(query).to_dict()
    flash, imaginary = document["groups"]
    assert (flash["cost"], flash["unpriced_requests"]) == ("0.00055", 0)
    assert (imaginary["model"], imaginary["cost"], imaginary["unpriced_requests"]) == (
        "gemini-9-imaginary",
        None,
        1,
    )
    assert (imaginary["input_tokens"], imaginary["output_tokens"]) == (1000, 100)
    # The total knows one price and says one generation is missing from it.
    assert (document["total"]["cost"], document["total"]["unpriced_requests"]) == ("0.00055", 1)
