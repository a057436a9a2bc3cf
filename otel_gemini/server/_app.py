"""The observability HTTP API as Starlette routes: costs, latency, health and the dashboard."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from otel_gemini._listen_security import BearerAuth, TokenFile, liveness_endpoint
from otel_gemini.aggregate import (
    FILTER_KEYS,
    CostAnswers,
    CostStoreError,
    QueryError,
    SourceUnavailable,
    parse_cost_query,
    parse_latency_query,
    parse_source,
)
from otel_gemini.health import HEALTH_ENDPOINT, HealthReporter, health_route
from otel_gemini.server._dashboard import dashboard_routes

BudgetAnswer = Callable[[], Mapping[str, Any]]
"""Where the budgets stand now (``otel_gemini.budgets.budget_status`` over the rules and
store); raises ``CostStoreError`` when the store cannot be read."""

BUDGETS_ENDPOINT: Final = "/api/observability/budgets"
COSTS_ENDPOINT: Final = "/api/observability/costs"
LATENCY_ENDPOINT: Final = "/api/observability/latency"
_PARAMETERS: Final = frozenset(("group_by", "from", "to", "tz", "source", *FILTER_KEYS))
# top=N keeps the N most costly groups (the dashboard's top users and sessions); the
# sources stop at N themselves (CostQuery.top).
_COST_PARAMETERS: Final = _PARAMETERS | {"top"}
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _bad_parameter(error: QueryError) -> JSONResponse:
    return JSONResponse(
        {"error": "bad_parameter", "parameter": error.parameter, "message": error.message},
        status_code=400,
        headers=_NO_STORE,
    )


def _parameters(request: Request, known: frozenset[str]) -> dict[str, str]:
    """The query parameters, each at most once and all known (else :class:`QueryError`)."""
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in known:
            raise QueryError(name, f"unknown parameter; use {', '.join(sorted(known))}")
        if name in values:
            raise QueryError(name, "given more than once; give one comma-separated value")
        values[name] = value
    return values


def _answer_route(
    path: str,
    name: str,
    answers: CostAnswers,
    ask: Callable[[CostAnswers, dict[str, str], datetime, str | None], dict[str, Any]],
    known: frozenset[str] = _PARAMETERS,
) -> Route:
    async def endpoint(request: Request) -> JSONResponse:
        try:
            parameters = _parameters(request, known)
            source = parse_source(parameters.get("source"), default=answers.default_source)
            now = datetime.now(timezone.utc)
            document = await run_in_threadpool(ask, answers, parameters, now, source)
        except QueryError as error:
            return _bad_parameter(error)
        except (SourceUnavailable, CostStoreError) as error:
            return JSONResponse(
                {"error": "unavailable", "message": str(error)},
                status_code=503,
                headers=_NO_STORE,
            )
        return JSONResponse(document, headers=_NO_STORE)

    return Route(path, endpoint, methods=["GET"], name=name)


def _costs(
    answers: CostAnswers, parameters: dict[str, str], now: datetime, source: str | None
) -> dict[str, Any]:
    return answers.costs(parse_cost_query(parameters, now), source).to_dict()


def _latency(
    answers: CostAnswers, parameters: dict[str, str], now: datetime, source: str | None
) -> dict[str, Any]:
    return answers.latency(parse_latency_query(parameters, now), source).to_dict()


def _budgets_route(budgets: BudgetAnswer | None) -> Route:
    async def endpoint(request: Request) -> JSONResponse:
        for name in request.query_params:
            return _bad_parameter(QueryError(name, "unknown parameter; this endpoint takes none"))
        if budgets is None:
            return JSONResponse(
                {
                    "error": "not_configured",
                    "message": "no budget rules here (set OTEL_GEMINI_BUDGETS or pass "
                    "--budgets; see docs/budgets.md)",
                },
                status_code=404,
                headers=_NO_STORE,
            )
        try:
            document = await run_in_threadpool(budgets)
        except CostStoreError as error:
            return JSONResponse(
                {"error": "unavailable", "message": str(error)}, status_code=503, headers=_NO_STORE
            )
        return JSONResponse(dict(document), headers=_NO_STORE)

    return Route(BUDGETS_ENDPOINT, endpoint, methods=["GET"], name="otel_gemini_budgets")


def _no_health_route() -> Route:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "unknown",
                "reasons": [
                    "no Langfuse exporter runs in this process, so there is no export "
                    "pipeline to judge (give observability_app() a HealthReporter)"
                ],
            },
            status_code=503,
            headers=_NO_STORE,
        )

    return Route(HEALTH_ENDPOINT, health, methods=["GET"], name="otel_gemini_health")


def observability_routes(
    answers: CostAnswers | None = None,
    health: HealthReporter | None = None,
    *,
    dashboard: bool = True,
    budgets: BudgetAnswer | None = None,
) -> list[BaseRoute]:
    """The API's routes, to add to an existing Starlette or FastAPI app::

        app.router.routes.extend(observability_routes(CostAnswers.from_env(), reporter))

    - ``GET /api/observability/costs``: cost and tokens grouped by any of ``user``,
      ``day``, ``model``, ``provider``, ``session`` (``group_by``), between ``from`` and
      ``to`` (ISO 8601), days in ``tz``; filters ``user``, ``session``, ``model``,
      ``provider``; ``source=local|langfuse``; ``top=N``: only the N most costly groups.
    - ``GET /api/observability/latency``: p50 / p95 / p99 latency and time to first token,
      and error rates, grouped by ``model`` (default), ``provider``, ``day``.
    - ``GET /api/observability/health``: ``health``'s report (the export pipeline's
      health); without a reporter, 503 ``unknown``.
    - ``GET /api/observability/livez``: ``{"status": "alive"}``, for probes (open even
      when a token is required).
    - ``GET /api/observability/budgets``: ``budgets()``'s answer, each rule's period, spend,
      limit, utilization, thresholds crossed and status (docs/budgets.md); 404 without rules.
    - ``GET /`` and ``GET /dashboard`` (unless ``dashboard=False``): the dashboard page,
      which draws these answers; its files under ``/api/observability/assets/``
      (docs/dashboard.md). Routes are matched in order, so your own ``/`` added before
      these keeps winning.

    A bad parameter gets HTTP 400 ``{"error": "bad_parameter", "parameter": ..., "message":
    ...}``; no source able to answer, 503. See docs/api.md.
    """
    routes: list[BaseRoute] = []
    if answers is not None:
        routes.append(
            _answer_route(COSTS_ENDPOINT, "otel_gemini_costs", answers, _costs, _COST_PARAMETERS)
        )
        routes.append(_answer_route(LATENCY_ENDPOINT, "otel_gemini_latency", answers, _latency))
    routes.append(health_route(health) if health is not None else _no_health_route())
    routes.append(_budgets_route(budgets))
    routes.append(liveness_endpoint())
    if dashboard:
        routes.extend(dashboard_routes())
    return routes


def observability_app(
    answers: CostAnswers | None = None,
    health: HealthReporter | None = None,
    *,
    auth: TokenFile | str | os.PathLike[str] | None = None,
    budgets: BudgetAnswer | None = None,
) -> Starlette:
    """The API and its dashboard page as an ASGI app: serve it with uvicorn, or mount
    it into your app (``app.mount("/obs", observability_app(...))``: the page is then
    ``/obs/``; mounted at ``/``, it answers ``/`` and ``/dashboard`` unless your app matched
    them first, and its other paths start with ``/api/observability/``). See
    :func:`observability_routes`.

    ``auth``: a token file (or its :class:`~otel_gemini.server.TokenFile`); every request
    but ``GET /api/observability/livez`` then needs ``Authorization: Bearer <token>`` and
    gets 401 without (see docs/security.md). Without it, guard the mount yourself."""
    middleware = []
    if auth is not None:
        tokens = auth if isinstance(auth, TokenFile) else TokenFile(auth)
        middleware.append(Middleware(BearerAuth, tokens))
    return Starlette(
        routes=observability_routes(answers, health, budgets=budgets), middleware=middleware
    )
