"""``CostAnswers``: the source asked for, or the local store when Langfuse cannot answer."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Final

from otel_gemini.aggregate._langfuse import LANGFUSE, LangfuseMetricsSource, LangfuseUnavailable
from otel_gemini.aggregate._local import LOCAL, LocalCostSource
from otel_gemini.aggregate._query import CostQuery, LatencyQuery, QueryError
from otel_gemini.aggregate._reports import CostReport, LatencyReport, Origin
from otel_gemini.aggregate._schema import CostStoreError, default_cost_db

_logger = logging.getLogger("otel_gemini.aggregate")
_FALLBACK_NOTE: Final = "answered from this service's local cost store instead"


class SourceUnavailable(RuntimeError):
    """No source could answer (HTTP 503); the message says why."""


class CostAnswers:
    """Answers cost and latency questions from ``local`` or ``langfuse``.

    ``source="langfuse"`` asks Langfuse's Metrics API; if Langfuse cannot answer
    (unreachable, timing out, refusing the keys, failing), the local store answers and the
    report says so: ``source: "local"``, ``stale: true`` and ``stale_reason``. The local
    store only knows this deployment's generations since its retention began, hence
    "stale". Without a ``source``, ``default_source`` (local when there is a local store).
    """

    def __init__(
        self,
        local: LocalCostSource | None = None,
        langfuse: LangfuseMetricsSource | None = None,
        *,
        default_source: str | None = None,
    ) -> None:
        if local is None and langfuse is None:
            raise ValueError("CostAnswers needs a local store, a Langfuse source, or both")
        self.local = local
        self.langfuse = langfuse
        self.default_source = default_source or (LOCAL if local is not None else LANGFUSE)

    @classmethod
    def from_env(
        cls,
        db: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        default_source: str | None = None,
    ) -> CostAnswers:
        """The local store at ``db`` (default: ``OTEL_GEMINI_COST_DB`` or its default
        path) and Langfuse when ``LANGFUSE_*`` is set (half-set or malformed settings raise
        :class:`~otel_gemini.export.LangfuseConfigError`)."""
        env = os.environ if environ is None else environ
        local = LocalCostSource(default_cost_db(env) if db is None else db)
        return cls(local, LangfuseMetricsSource.from_env(env), default_source=default_source)

    def costs(self, query: CostQuery, source: str | None = None) -> CostReport:
        """Cost and tokens by group (raises :class:`QueryError`, :class:`SourceUnavailable`)."""
        chosen = self._choose(source)
        if chosen == LANGFUSE:
            assert self.langfuse is not None
            try:
                return self.langfuse.costs(query)
            except LangfuseUnavailable as error:
                local = self._fallback(error)
                try:
                    return local.costs(query, self._stale_origin(error))
                except CostStoreError as missing:
                    raise SourceUnavailable(f"{error}; and {missing}") from None
        return self._local().costs(query)

    def latency(self, query: LatencyQuery, source: str | None = None) -> LatencyReport:
        """Latency percentiles and error rates by group (same fallback as :meth:`costs`)."""
        chosen = self._choose(source)
        if chosen == LANGFUSE:
            assert self.langfuse is not None
            try:
                return self.langfuse.latency(query)
            except LangfuseUnavailable as error:
                local = self._fallback(error)
                try:
                    return local.latency(query, self._stale_origin(error))
                except CostStoreError as missing:
                    raise SourceUnavailable(f"{error}; and {missing}") from None
        return self._local().latency(query)

    def close(self) -> None:
        if self.langfuse is not None:
            self.langfuse.close()

    def _choose(self, source: str | None) -> str:
        chosen = source or self.default_source
        if chosen == LANGFUSE and self.langfuse is None:
            raise QueryError(
                "source",
                "Langfuse is not configured here: set LANGFUSE_PUBLIC_KEY and "
                "LANGFUSE_SECRET_KEY (and LANGFUSE_BASE_URL) for source=langfuse",
            )
        if chosen == LOCAL and self.local is None:
            raise QueryError("source", "there is no local cost store here; use source=langfuse")
        if chosen not in (LOCAL, LANGFUSE):
            raise QueryError("source", f"unknown source {chosen!r}; use local or langfuse")
        return chosen

    def _local(self) -> LocalCostSource:
        assert self.local is not None
        return self.local

    def _fallback(self, error: LangfuseUnavailable) -> LocalCostSource:
        if self.local is None:
            raise SourceUnavailable(f"{error}; and there is no local cost store") from None
        _logger.info("otel-gemini: %s; %s", error, _FALLBACK_NOTE)
        return self.local

    @staticmethod
    def _stale_origin(error: LangfuseUnavailable) -> Origin:
        return Origin(LOCAL, LANGFUSE, stale=True, stale_reason=f"{error}; {_FALLBACK_NOTE}")
