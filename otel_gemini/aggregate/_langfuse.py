"""Answers from Langfuse's Metrics API (``GET /api/public/v2/metrics``) through the
langfuse SDK."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import httpx

from otel_gemini._langfuse_settings import warn_if_cleartext
from otel_gemini._suppress import untraced
from otel_gemini.aggregate._langfuse_queries import (
    COST_METRICS,
    ERROR_FILTER,
    ERROR_METRICS,
    LATENCY_METRICS,
    as_decimal,
    as_float,
    as_int,
    build_query,
    check_supported,
    metric,
    plan_windows,
    row_key,
)
from otel_gemini.aggregate._query import CostQuery, LatencyQuery
from otel_gemini.aggregate._reports import (
    CostGroup,
    CostReport,
    LatencyGroup,
    LatencyReport,
    Origin,
    Percentiles,
    add_groups,
)

LANGFUSE: Final = "langfuse"
DEFAULT_ROW_LIMIT: Final = 1000
DEFAULT_MAX_DAY_QUERIES: Final = 92
DEFAULT_TIMEOUT: Final = 10.0


class LangfuseUnavailable(RuntimeError):
    """The Metrics API could not answer (unreachable, timed out, refused, or an error); the
    message says which, without credentials."""


class LangfuseMetricsSource:
    """Cost and latency answers from Langfuse's Metrics API (its ClickHouse store).

    Uses the langfuse SDK (``LangfuseAPI(...).metrics.metrics(query=...)``) with no SDK
    retries: a failure raises :class:`LangfuseUnavailable` at once, so that
    :class:`CostAnswers` can answer from the local store instead.
    """

    def __init__(
        self,
        base_url: str,
        public_key: str,
        secret_key: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        row_limit: int = DEFAULT_ROW_LIMIT,
        max_day_queries: int = DEFAULT_MAX_DAY_QUERIES,
    ) -> None:
        if not 1 <= row_limit <= 1000:
            raise ValueError(f"row_limit must be 1 to 1000 (Langfuse's limit), got {row_limit}")
        self.base_url = base_url.rstrip("/")
        warn_if_cleartext(self.base_url)  # the keys go with every Metrics API query too
        self._public_key = public_key
        self._secret_key = secret_key
        self._timeout = timeout
        self.row_limit = row_limit
        self.max_day_queries = max_day_queries
        self._client: Any = None
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **options: Any
    ) -> LangfuseMetricsSource | None:
        """From ``LANGFUSE_BASE_URL`` (or ``LANGFUSE_HOST``), ``LANGFUSE_PUBLIC_KEY`` and
        ``LANGFUSE_SECRET_KEY``; ``None`` when none is set. Half-set keys or a malformed
        URL raise :class:`~otel_gemini.export.LangfuseConfigError`, as ``configure()`` does."""
        from otel_gemini._langfuse_settings import langfuse_from_env

        settings = langfuse_from_env(environ)
        if settings is None:
            return None
        return cls(settings.base_url, settings.public_key, settings.secret_key, **options)

    # --- questions ----------------------------------------------------------------------

    def costs(self, query: CostQuery) -> CostReport:
        """Cost and tokens by group (the request count is Langfuse's observation count)."""
        check_supported(query.group_by, query.filters)
        windows = plan_windows(query.window, query.group_by, self.max_day_queries)
        merged: dict[tuple[str | None, ...], list[CostGroup]] = {}
        truncated = False
        for window in windows:
            body = build_query(window, query.group_by, query.filters, COST_METRICS, self.row_limit)
            rows = self._ask(body)
            truncated = truncated or len(rows) >= self.row_limit
            for row in rows:
                requests = as_int(metric(row, "count", "count"))
                if not requests:
                    continue  # a zero row Langfuse fills into a time series
                key = row_key(row, query.group_by, window)
                merged.setdefault(key, []).append(
                    CostGroup(
                        key=dict(zip(query.group_by, key, strict=True)),
                        requests=requests,
                        cost=as_decimal(metric(row, "totalCost", "sum")),
                        input_cost=as_decimal(metric(row, "inputCost", "sum")),
                        output_cost=as_decimal(metric(row, "outputCost", "sum")),
                        input_tokens=as_int(metric(row, "inputTokens", "sum")),
                        output_tokens=as_int(metric(row, "outputTokens", "sum")),
                        total_tokens=as_int(metric(row, "totalTokens", "sum")),
                    )
                )
        groups = [
            parts[0] if len(parts) == 1 else add_groups(parts, parts[0].key)
            for _, parts in sorted(merged.items(), key=lambda item: _sort_key(item[0]))
        ]
        origin = Origin(LANGFUSE, LANGFUSE, truncated=truncated)
        return CostReport(query, origin, tuple(groups))

    def latency(self, query: LatencyQuery) -> LatencyReport:
        """Latency and time-to-first-token percentiles (ClickHouse ``quantile``) and error
        counts (observations with level ``ERROR``) by group."""
        check_supported(query.group_by, query.filters)
        windows = plan_windows(query.window, query.group_by, self.max_day_queries)
        groups: dict[tuple[str | None, ...], LatencyGroup] = {}
        truncated = False
        for window in windows:
            rows = self._ask(
                build_query(window, query.group_by, query.filters, LATENCY_METRICS, self.row_limit)
            )
            errors = self._ask(
                build_query(
                    window,
                    query.group_by,
                    query.filters,
                    ERROR_METRICS,
                    self.row_limit,
                    extra_filters=(ERROR_FILTER,),
                )
            )
            truncated = truncated or max(len(rows), len(errors)) >= self.row_limit
            error_counts = {
                row_key(row, query.group_by, window): as_int(metric(row, "count", "count"))
                for row in errors
            }
            for row in rows:
                requests = as_int(metric(row, "count", "count"))
                if not requests:
                    continue
                key = row_key(row, query.group_by, window)
                groups[key] = LatencyGroup(
                    key=dict(zip(query.group_by, key, strict=True)),
                    requests=requests,
                    errors=error_counts.get(key, 0),
                    latency_ms=_percentiles(row, "latency", requests),
                    time_to_first_token_ms=_percentiles(
                        row, "timeToFirstToken", as_int(metric(row, "timeToFirstToken", "count"))
                    ),
                )
        ordered = tuple(groups[key] for key in sorted(groups, key=_sort_key))
        return LatencyReport(query, Origin(LANGFUSE, LANGFUSE, truncated=truncated), ordered)

    # --- the SDK call -------------------------------------------------------------------

    def _api(self) -> Any:
        with self._lock:
            if self._client is None:
                from otel_gemini._extras import MissingExtraError, require_extra

                try:
                    require_extra("langfuse", "source=langfuse")
                except MissingExtraError as missing:
                    raise LangfuseUnavailable(str(missing)) from None
                try:
                    from langfuse.api.client import LangfuseAPI
                except ImportError:
                    # langfuse 3.x names its client FernLangfuse and asks the deprecated v1
                    # Metrics API: say so rather than fail with an import error.
                    from importlib.metadata import version

                    raise LangfuseUnavailable(
                        "source=langfuse needs the langfuse SDK 4.0 or newer (Metrics API v2); "
                        f"langfuse {version('langfuse')} is installed"
                    ) from None

                self._http = httpx.Client(timeout=self._timeout)
                self._client = LangfuseAPI(
                    base_url=self.base_url,
                    username=self._public_key,
                    password=self._secret_key,
                    x_langfuse_public_key=self._public_key,
                    httpx_client=self._http,
                )
            return self._client

    @untraced  # the SDK's GET goes through httpx: no span of the app's
    def _ask(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """One Metrics API call; its rows, or :class:`LangfuseUnavailable`."""
        api = self._api()  # first: says which extra to install when langfuse is missing
        from langfuse.api.core.api_error import ApiError

        text = json.dumps(body, separators=(",", ":"))
        try:
            response = api.metrics.metrics(query=text, request_options={"max_retries": 0})
        except httpx.TimeoutException as error:
            raise LangfuseUnavailable(
                f"Langfuse at {self.base_url} did not answer within {self._timeout:g} s "
                f"({type(error).__name__})"
            ) from None
        except httpx.HTTPError as error:
            raise LangfuseUnavailable(
                f"Langfuse at {self.base_url} is unreachable ({type(error).__name__}: {error})"
            ) from None
        except ApiError as error:
            raise LangfuseUnavailable(
                f"Langfuse's Metrics API answered HTTP {error.status_code}" + _message(error.body)
            ) from None
        except ValueError as error:  # an unparsable body (pydantic's errors are ValueErrors)
            raise LangfuseUnavailable(
                f"Langfuse's Metrics API sent an unreadable answer ({type(error).__name__})"
            ) from None
        return [dict(row) for row in response.data]

    def close(self) -> None:
        """Closes the HTTP client (a later question opens a new one)."""
        with self._lock:
            http, self._http, self._client = self._http, None, None
        if http is not None:
            http.close()


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error")
        if isinstance(message, str) and message:
            return f": {message[:300]}"
    return ""


def _percentiles(row: Mapping[str, Any], measure: str, count: int) -> Percentiles:
    if not count:
        return Percentiles(0)
    return Percentiles(
        count,
        as_float(metric(row, measure, "p50")),
        as_float(metric(row, measure, "p95")),
        as_float(metric(row, measure, "p99")),
        as_float(metric(row, measure, "avg")),
        as_float(metric(row, measure, "max")),
    )


def _sort_key(key: Sequence[str | None]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is not None, value or "") for value in key)
