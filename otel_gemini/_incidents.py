"""Log once and count: the one way our code reports an incident it survives.

An internal error (or a span we cannot price, a damaged record…) must never reach the app
and never flood its logs: each place counts every occurrence (health shows the counts) and
logs only the first one. The memory of what was logged is bounded, so a flood of distinct
keys (a peer sending a new model name per span) cannot grow it.
"""

from __future__ import annotations

import logging
import threading
from typing import Final

from otel_gemini._background import renew_locks_after_fork

# Keys remembered as "already logged" at most; past this, new keys are counted, not logged.
MAX_REMEMBERED: Final = 1000


class IncidentLog:
    """Counts incidents by place and logs the first of each (thread- and fork-safe)."""

    def __init__(self, logger: logging.Logger, max_remembered: int = MAX_REMEMBERED) -> None:
        self._logger = logger
        self._max_remembered = max_remembered
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._logged: set[str] = set()
        self._counts: dict[str, int] = {}

    def first_time(self, key: str) -> bool:
        """Whether ``key`` is new (and now remembered): the caller logs it then."""
        with self._lock:
            if key in self._logged or len(self._logged) >= self._max_remembered:
                return False
            self._logged.add(key)
            return True

    def count(self, where: str) -> None:
        with self._lock:
            self._counts[where] = self._counts.get(where, 0) + 1

    def error(self, where: str, error: BaseException, message: str, *args: object) -> None:
        """Count an error at ``where``; the first one there is logged as ``message % args``
        (a warning, with the traceback)."""
        self.count(where)
        if self.first_time(f"error:{where}"):
            self._logger.warning(message, *args, exc_info=error)

    def counts(self) -> dict[str, int]:
        """Incidents counted so far, by place."""
        with self._lock:
            return dict(self._counts)

    def forget_logged(self) -> None:
        """Log each place's next incident again (tests: which test first hits a place must
        not decide which one sees its log)."""
        with self._lock:
            self._logged.clear()
