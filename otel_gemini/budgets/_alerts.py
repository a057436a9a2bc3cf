"""Budget alerts: what one says, the log record, and the webhook that POSTs it.

An alert carries the rule, the scope and its value, the period, the spend and the limit:
never a prompt, a response, a key or a token. The webhook URL (a Slack webhook's URL is a
secret) is never logged; health names its host only.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import httpx

from otel_gemini._background import BackgroundLoop, LoopStatus
from otel_gemini.budgets._rules import WebhookSettings

_logger = logging.getLogger("otel_gemini.budgets")

KIND_WARNING: Final = "warning"
"""A warning threshold (e.g. 80 %) was reached."""
KIND_LIMIT: Final = "limit"
"""The limit itself (100 %) was reached."""
KIND_ANOMALY: Final = "anomaly"
"""Cost per request in the last hour is ``ratio`` times the previous 7 days'."""

DROP_QUEUE_FULL: Final = "queue_full"
DROP_GAVE_UP: Final = "gave_up"
_RETRYABLE_STATUS: Final = frozenset((408, 425, 429, 500, 502, 503, 504))
_MAX_BACKOFF: Final = 30.0


@dataclass(frozen=True)
class BudgetAlert:
    """One alert, as logged, POSTed (format ``json``) and summarised for Slack."""

    kind: str
    rule: str
    scope: str
    scope_value: str
    period_start: str
    period_end: str
    spend_usd: str
    """Exact decimal string."""
    limit_usd: str | None
    utilization: str | None
    """Spend / limit, as a decimal string (``"0.8125"``)."""
    threshold: str
    """The fraction reached (``"0.8"``, ``"1"``), or the anomaly rule's ratio."""
    message: str
    details: dict[str, str] = field(default_factory=dict)
    """Anomalies: ``recent_cost_per_request``, ``baseline_cost_per_request``, ``ratio``,
    ``recent_requests``."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON document the webhook POSTs (``format = "json"``)."""
        return {"type": "otel_gemini.budget_alert", **asdict(self)}

    def slack_payload(self) -> dict[str, Any]:
        """Slack's incoming-webhook body: ``text`` and one section block."""
        icon = {KIND_WARNING: ":warning:", KIND_LIMIT: ":no_entry:"}.get(self.kind, ":mag:")
        return {
            "text": f"{icon} {self.message}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {self.message}"}}
            ],
        }


def log_alert(alert: BudgetAlert) -> None:
    """The alert's log record (logger ``otel_gemini.budgets``, WARNING), with the alert's
    fields under ``extra={"budget_alert": ...}`` for structured handlers."""
    _logger.warning(
        "otel-gemini budget alert: %s", alert.message, extra={"budget_alert": alert.to_dict()}
    )


class WebhookSender:
    """POSTs alerts to one URL from a supervised background loop: a bounded queue (a full
    one drops the alert, counted), retries with exponential backoff on connection errors,
    timeouts, 408/425/429 and 5xx, at most ``settings.attempts`` tries; failures counted
    and reported by :meth:`problems` (health)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._initial_backoff = settings.retry_initial_seconds
        self._lock = threading.Lock()
        self._queue: collections.deque[BudgetAlert] = collections.deque()
        self._has_data = threading.Event()
        self._stopping = threading.Event()
        self._delivered = 0
        self._failed_attempts = 0
        self._dropped = {DROP_QUEUE_FULL: 0, DROP_GAVE_UP: 0}
        self._last_error: str | None = None
        self._client: httpx.Client | None = None
        self._loop = BackgroundLoop("budget-webhook", self._run, on_exit=self._close)
        self._loop.start()

    def send(self, alert: BudgetAlert) -> None:
        with self._lock:
            if len(self._queue) >= self.settings.max_queue:
                self._dropped[DROP_QUEUE_FULL] += 1
                return
            self._queue.append(alert)
        self._has_data.set()

    def _body(self, alert: BudgetAlert) -> dict[str, Any]:
        return alert.slack_payload() if self.settings.format == "slack" else alert.to_dict()

    def _run(self) -> None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.settings.timeout, follow_redirects=False)
        while True:
            with self._lock:
                alert = self._queue[0] if self._queue else None
                if alert is None:
                    self._has_data.clear()
            if alert is None:
                if self._stopping.is_set():
                    return
                self._has_data.wait()
                continue
            self._deliver(alert)
            with self._lock:
                self._queue.popleft()

    def _deliver(self, alert: BudgetAlert) -> None:
        assert self._client is not None
        delay = self._initial_backoff
        for attempt in range(1, self.settings.attempts + 1):
            try:
                response = self._client.post(self.settings.url, json=self._body(alert))
                if response.status_code < 300:
                    with self._lock:
                        self._delivered += 1
                    return
                error = f"HTTP {response.status_code}"
                retryable = response.status_code in _RETRYABLE_STATUS
            except httpx.HTTPError as exc:
                error = type(exc).__name__
                retryable = True
            with self._lock:
                self._failed_attempts += 1
                self._last_error = error
            if not retryable or attempt == self.settings.attempts:
                break
            # Interrupted by shutdown: the last tries go at once rather than after minutes.
            self._stopping.wait(delay)
            delay = min(_MAX_BACKOFF, delay * 2)
        with self._lock:
            self._dropped[DROP_GAVE_UP] += 1
        _logger.warning(
            "otel-gemini: a budget alert could not be delivered to the webhook at %s (%s); "
            "it is counted in health (the alert is in the log)",
            self.settings.host,
            self._last_error,
        )

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()

    def shutdown(self, timeout: float) -> None:
        """Sends what is queued (retries without waiting), within ``timeout`` seconds."""
        self._stopping.set()
        self._loop.stop()
        self._has_data.set()
        self._loop.join(timeout)

    def loop_status(self) -> LoopStatus:
        return self._loop.status()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "host": self.settings.host,
                "format": self.settings.format,
                "queued": len(self._queue),
                "delivered": self._delivered,
                "failed_attempts": self._failed_attempts,
                "dropped": dict(self._dropped),
                "last_error": self._last_error,
            }

    def problems(self) -> list[str]:
        with self._lock:
            dropped = dict(self._dropped)
        reasons = []
        if dropped[DROP_GAVE_UP]:
            reasons.append(
                f"budget webhook ({self.settings.host}): {dropped[DROP_GAVE_UP]} alert(s) "
                f"could not be delivered ({self._last_error}); they are in the log"
            )
        if dropped[DROP_QUEUE_FULL]:
            reasons.append(
                f"budget webhook ({self.settings.host}): {dropped[DROP_QUEUE_FULL]} alert(s) "
                "dropped, its queue was full; they are in the log"
            )
        return reasons
