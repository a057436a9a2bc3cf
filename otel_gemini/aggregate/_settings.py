"""The cost store's settings: keyword arguments (``CostStore``, ``configure()``), environment
variables and ``otel-gemini`` options, with their defaults and checks in one place.

Every entry point resolves them through :meth:`CostStoreSettings.resolve`, so a bad value
fails with the same line wherever it was given (naming the keyword, the variable and the
option), and a command exits 2 for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypedDict

ENV_COST_DB: Final = "OTEL_GEMINI_COST_DB"
ENV_COST_RETENTION_DAYS: Final = "OTEL_GEMINI_COST_RETENTION_DAYS"
RETENTION_OPTION: Final = "--retention-days"
"""The option of the commands that write a store (``otel-gemini gateway``)."""

DEFAULT_RETENTION_DAYS: Final = 90.0
DEFAULT_MAX_QUEUE: Final = 20_000
"""At most this many spans wait for the writer (besides the byte bound)."""
DEFAULT_MAX_QUEUE_BYTES: Final = 8 * 1024 * 1024
"""At most this many bytes (estimated: ``RECORD_BYTES`` a span plus its captured content)
wait for the writer; a span that would go over is dropped (``queue_full``)."""
DEFAULT_BATCH_DELAY: Final = 0.2
"""Seconds the writer waits for more spans before writing a batch."""

_RETENTION_NAMES: Final = f"retention_days / {ENV_COST_RETENTION_DAYS} / {RETENTION_OPTION}"


class CostStoreError(RuntimeError):
    """The cost store's database cannot be opened or created (the message names the path)."""


class CostStoreConfigError(CostStoreError, ValueError):
    """A cost store setting cannot be used; the message names it (keyword, variable and
    option). A ``ValueError`` too, as ``CostStore``'s checks of its arguments always were."""


class CostStoreOptions(TypedDict, total=False):
    """The keyword options of :class:`~otel_gemini.aggregate.CostStore` that
    ``configure(cost_store_options=...)`` passes on; defaults are
    :class:`CostStoreSettings`'s."""

    retention_days: float | None
    max_queue: int
    max_queue_bytes: int
    batch_delay: float


def default_cost_db(environ: Mapping[str, str]) -> Path:
    """``$OTEL_GEMINI_COST_DB``, else ``$XDG_STATE_HOME/otel-gemini/costs.sqlite3``, else
    ``~/.local/state/otel-gemini/costs.sqlite3``."""
    configured = environ.get(ENV_COST_DB)
    if configured:
        return Path(configured).expanduser()
    state_home = environ.get("XDG_STATE_HOME")
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "otel-gemini" / "costs.sqlite3"


def path_from(value: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path:
    """The store's path: ``value`` when given, else :func:`default_cost_db`."""
    return Path(value).expanduser() if value is not None else default_cost_db(environ)


def parse_retention(value: float | str | None, environ: Mapping[str, str]) -> float | None:
    """Days to keep rows, from ``value`` (a keyword's number or an option's text), else
    ``OTEL_GEMINI_COST_RETENTION_DAYS``, else 90; ``None``: keep everything (``0``)."""
    if value is None:
        value = environ.get(ENV_COST_RETENTION_DAYS)
        if value is None or not value.strip():
            return DEFAULT_RETENTION_DAYS
    shown = value.strip() if isinstance(value, str) else value
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise CostStoreConfigError(
            f"{_RETENTION_NAMES} must be a number of days (got {shown})"
        ) from None
    if not days >= 0 or math.isinf(days):
        raise CostStoreConfigError(f"{_RETENTION_NAMES} must be 0 or more days (got {shown})")
    return days or None


def _at_least(value: float, minimum: float, keyword: str) -> None:
    if not value >= minimum:
        raise CostStoreConfigError(f"{keyword} must be at least {minimum} (got {value!r})")


@dataclass(frozen=True)
class CostStoreSettings:
    """Where the store lives and how much it keeps, resolved and checked once."""

    path: Path
    retention_days: float | None = DEFAULT_RETENTION_DAYS
    """Days rows are kept; ``None``: forever."""
    max_queue: int = DEFAULT_MAX_QUEUE
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES
    batch_delay: float = DEFAULT_BATCH_DELAY

    @classmethod
    def resolve(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        retention_days: float | str | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        batch_delay: float = DEFAULT_BATCH_DELAY,
    ) -> CostStoreSettings:
        """Arguments over ``OTEL_GEMINI_COST_DB`` / ``OTEL_GEMINI_COST_RETENTION_DAYS``
        over the defaults; :class:`CostStoreConfigError` names a value that cannot be used."""
        env = os.environ if environ is None else environ
        _at_least(max_queue, 1, "max_queue")
        _at_least(max_queue_bytes, 1, "max_queue_bytes")
        _at_least(batch_delay, 0, "batch_delay")
        return cls(
            path=path_from(path, env),
            retention_days=parse_retention(retention_days, env),
            max_queue=max_queue,
            max_queue_bytes=max_queue_bytes,
            batch_delay=batch_delay,
        )
