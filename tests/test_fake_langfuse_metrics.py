"""The fake Langfuse's Metrics API enforces Langfuse's v2 query rules and records queries."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from otel_gemini.export._transport import basic_auth
from otel_gemini.testing import FakeLangfuse

BASE = {
    "view": "observations",
    "metrics": [{"measure": "totalCost", "aggregation": "sum"}],
    "fromTimestamp": "2026-11-01T00:00:00.000Z",
    "toTimestamp": "2026-11-02T00:00:00.000Z",
}


def ask(langfuse: FakeLangfuse, query: dict[str, Any], secret: str | None = None) -> httpx.Response:
    return httpx.get(
        f"{langfuse.base_url}/api/public/v2/metrics",
        params={"query": json.dumps(query)},
        headers={"Authorization": basic_auth(langfuse.public_key, secret or langfuse.secret_key)},
        timeout=5,
    )


def test_an_empty_project_answers_no_rows_and_the_query_is_recorded(
    fake_langfuse: FakeLangfuse,
) -> None:
    response = ask(fake_langfuse, BASE)
    assert (response.status_code, response.json()) == (200, {"data": []})
    assert fake_langfuse.metrics.wait_for_queries(1) == [BASE]


def test_wrong_keys_are_401(fake_langfuse: FakeLangfuse) -> None:
    assert ask(fake_langfuse, BASE, secret="sk-wrong").status_code == 401


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"dimensions": [{"field": "userId"}]}, "require both 'config.row_limit' and 'orderBy'"),
        (
            {"dimensions": [{"field": "userId"}], "config": {"row_limit": 10}},
            "require both 'config.row_limit' and 'orderBy'",
        ),
        (
            {
                "dimensions": [{"field": "sessionId"}],
                "config": {"row_limit": 10},
                "orderBy": [{"field": "sessionId", "direction": "desc"}],
            },
            "'sessionId' is not a measure in this query",
        ),
        (
            {
                "dimensions": [{"field": "userId"}],
                "timeDimension": {"granularity": "day"},
                "config": {"row_limit": 10},
                "orderBy": [{"field": "sum_totalCost", "direction": "desc"}],
            },
            "cannot be used with timeDimension",
        ),
        ({"dimensions": [{"field": "provider"}]}, "Invalid dimension provider"),
        ({"metrics": [{"measure": "cost", "aggregation": "sum"}]}, "Invalid metric cost"),
        ({"config": {"row_limit": 5000}}, "row_limit must be 1 to 1000"),
    ],
)
def test_queries_langfuse_refuses_are_400(
    fake_langfuse: FakeLangfuse, extra: dict[str, Any], message: str
) -> None:
    response = ask(fake_langfuse, {**BASE, **extra})
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_a_valid_top_n_user_query_is_answered(fake_langfuse: FakeLangfuse) -> None:
    query = {
        **BASE,
        "dimensions": [{"field": "userId"}],
        "config": {"row_limit": 10},
        "orderBy": [{"field": "sum_totalCost", "direction": "desc"}],
    }
    assert ask(fake_langfuse, query).status_code == 200
