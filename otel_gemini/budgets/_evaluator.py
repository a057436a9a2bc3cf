"""``BudgetEvaluator``: budgets evaluated on a background worker as priced rows are committed.

The cost store calls :meth:`BudgetEvaluator.on_committed` on its writer thread after each
committed batch; that only queues the rows. The evaluator's own supervised worker then:

- adds each row's cost to the running total of its rule / scope value / period. A total is
  first read from the store (SQL over ``generations``), so it holds what every process sharing
  the file and every earlier run wrote; afterwards this process's own rows are added as they
  commit (exact integers of 1e-15 USD). Every ``interval`` seconds (and when a period ends)
  the totals are read again from the store: other processes' spend, corrections;
- alerts when a total reaches a threshold: once per rule, scope value, period and threshold,
  recorded in the store's ``budget_alerts`` table so other processes and later runs do not
  repeat it;
- keeps the set of exhausted scopes that enforcement (``_guard``) checks, and the utilization
  the ``otel_gemini.budget.utilization`` gauge reports;
- runs anomaly rules at each re-read.

If the store cannot be read, totals are unknown: enforcement lets requests through
(fail-open), the miss is counted and health says so.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation, get_meter

from otel_gemini import _background
from otel_gemini._background import BatchWorker, LoopStatus
from otel_gemini._money import femto_decimal, to_femto, usd_text
from otel_gemini._version import __version__
from otel_gemini.aggregate import CommittedRows, GenerationRow
from otel_gemini.budgets import _guard, _ledger
from otel_gemini.budgets._alerts import (
    KIND_ANOMALY,
    KIND_LIMIT,
    KIND_WARNING,
    BudgetAlert,
    WebhookSender,
    log_alert,
)
from otel_gemini.budgets._periods import Period, period_of
from otel_gemini.budgets._rules import (
    SCOPE_MODEL,
    SCOPE_SERVICE,
    SCOPE_SESSION,
    SCOPE_TAG,
    SCOPE_USER,
    AnomalyRule,
    BudgetRule,
    BudgetRules,
)

_logger = logging.getLogger("otel_gemini.budgets")

UTILIZATION_METRIC: Final = "otel_gemini.budget.utilization"
ALERTS_METRIC: Final = "otel_gemini.budget.alerts"
_IDLE_CHECK: Final = 1.0
"""Seconds between checks whether a re-read is due (interval passed, a period ended)."""
_BATCH_DELAY: Final = 0.02
_PERSONAL_SCOPES: Final = frozenset((SCOPE_USER, SCOPE_SESSION))

TotalKey = tuple[int, str, str]
"""(rule index, scope value, period key)."""


def _values(rule: BudgetRule, row: GenerationRow) -> tuple[str, ...]:
    """The rule's scope values ``row`` counts under (none, one, or for ``model`` two)."""
    scope = rule.scope
    if scope == SCOPE_USER:
        value = row.user_id
    elif scope == SCOPE_SESSION:
        value = row.session_id
    elif scope == SCOPE_MODEL:
        return _ledger.model_values(row.model, row.request_model)
    elif scope == SCOPE_SERVICE:
        value = row.service_name
    elif scope == SCOPE_TAG:
        tags = row.tags
        # Tags are stored as a sorted JSON array of strings: a quoted match is exact.
        value = rule.tag if tags is not None and f'"{rule.tag}"' in tags else None
    else:
        value = _ledger.TOTAL_VALUE
    return () if value is None else (value,)


@dataclass
class _Total:
    period: Period
    femto: int
    requests: int
    unpriced: int
    as_of_rowid: int
    """The store's ``max(rowid)`` when this total was read: commits up to it are in it."""


def _fraction_text(value: Decimal) -> str:
    return usd_text(value) or "0"


class BudgetEvaluator:
    """Evaluates ``rules`` over the cost store at ``store_path`` (see the module docstring).

    Connect it with ``store.add_commit_listener(evaluator.on_committed)``. ``enforce``:
    publish exhausted scopes to the request guard (rules with ``enforce = true``).
    ``clock``: Unix seconds (tests move it). ``service_name``: this process's
    ``service.name``, for enforcing ``service.name`` rules.
    """

    def __init__(
        self,
        rules: BudgetRules,
        store_path: Path,
        *,
        meter_provider: MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
        enforce: bool = True,
        service_name: str | None = None,
    ) -> None:
        self.rules = rules
        self.store_path = store_path
        self._clock = clock
        self._enforce = enforce and rules.enforced
        self._model_enforced = self._enforce and any(
            rule.enforce and rule.scope == SCOPE_MODEL for rule in rules.budgets
        )
        self._service_name = service_name
        self._alerts = 0
        self._read_errors = 0
        self.webhook = WebhookSender(rules.webhook) if rules.webhook is not None else None
        meter = (
            meter_provider.get_meter("otel_gemini.budgets", __version__)
            if meter_provider is not None
            else get_meter("otel_gemini.budgets", __version__)
        )
        meter.create_observable_gauge(
            UTILIZATION_METRIC,
            callbacks=[self._observe],
            unit="1",
            description="Spend in the current period over the budget's limit, by rule "
            "(the highest scope value's unless scope values are opted in)",
        )
        self._alert_counter = meter.create_counter(
            ALERTS_METRIC, unit="{alert}", description="Budget alerts sent, by rule and kind"
        )
        self._init_process_state(closed=False)
        self._worker.start()
        self._started = True
        _background.fork_hooks(after_in_child=self._after_fork_in_child)

    def _init_process_state(self, *, closed: bool) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._queue: list[CommittedRows | None] = []  # None: a re-read is asked for
        self._offered = 0
        self._processed = 0
        self._has_data = threading.Event()
        self._urgent = threading.Event()
        self._refresh_requested = True  # the first run reads the store
        self._next_refresh = 0.0
        self._connection: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._totals: dict[TotalKey, _Total] = {}
        self._exhausted: dict[_guard.ScopeKey, _guard.Exhaustion] = {}  # what enforcement sees
        # Model names requests named that another model answered (an alias → the model, as
        # of its latest request): enforcement closes the alias with that model.
        self._aliases: dict[str, tuple[int, str]] = {}
        self._periods: dict[int, Period] = {}  # rule index -> its latest period
        self._fired: set[tuple[str, str, str, str]] = set()
        self._unreadable: str | None = None
        self._utilization: dict[tuple[str, str, str], float] = {}
        self._closed = closed
        self._started = False
        self._worker: BatchWorker[list[CommittedRows | None]] = BatchWorker(
            "budgets",
            has_data=self._has_data,
            urgent=self._urgent,
            delay=_BATCH_DELAY,
            drain=self._take,
            process=self._process,
            pending=self._pending,
            idle=self._maybe_refresh,
            idle_interval=min(_IDLE_CHECK, self.rules.interval),
            on_exit=self._close,
        )

    def _after_fork_in_child(self) -> None:
        # No thread here (the child may exec): the worker starts on the child's first rows.
        # The parent's connection is left alone (SQLite forbids using it across fork).
        self._init_process_state(closed=self._closed)

    # --- the store's writer thread ---------------------------------------------------------

    def on_committed(self, committed: CommittedRows) -> None:
        """The cost store's commit listener: queues the rows (no I/O here)."""
        with self._lock:
            if self._closed:
                return
            self._queue.append(committed)
            self._offered += 1
            if not self._started:  # a forked child's first rows
                self._started = True
                self._worker.start()
        self._has_data.set()

    # --- control -----------------------------------------------------------------------------

    def evaluate_now(self) -> None:
        """Re-reads every total from the store and runs the anomaly rules now (the worker
        does it every ``interval`` seconds anyway); :meth:`force_flush` waits for it."""
        with self._lock:
            self._refresh_requested = True
            self._queue.append(None)
            self._offered += 1
        self._has_data.set()
        self._urgent.set()

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything handed over so far has been evaluated (False: timed out)."""
        with self._lock:
            target = self._offered
        return self._worker.flush(self._progress, lambda: self._processed >= target, timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Evaluates what is queued, stops, and sends queued webhook alerts, within
        ``timeout`` seconds. Enforcement stops (nothing is exhausted any more)."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                return
        self.force_flush(timeout)
        with self._lock:
            self._closed = True
        self._worker.stop()
        self._worker.loop.join(max(0.0, deadline - time.monotonic()))
        if self._enforce:
            _guard.publish({})
        if self.webhook is not None:
            self.webhook.shutdown(max(0.0, deadline - time.monotonic()))

    # --- the worker --------------------------------------------------------------------------

    def _take(self) -> list[CommittedRows | None]:
        with self._lock:
            batch, self._queue = self._queue, []
            self._has_data.clear()
            self._urgent.clear()
        return batch

    def _pending(self) -> bool:
        with self._lock:
            return bool(self._queue)

    def _process(self, batch: list[CommittedRows | None]) -> None:
        try:
            if any(committed is not None and committed.replaced for committed in batch):
                with self._lock:  # a span written again: its cost is in the store once
                    self._refresh_requested = True  # re-read; adding would count it twice
            if self._refresh_due():
                self._refresh()
            for committed in batch:
                if committed is not None and self._unreadable is None:
                    self._add(committed)
        finally:
            with self._progress:
                self._processed += len(batch)
                self._progress.notify_all()

    def _refresh_due(self) -> bool:
        with self._lock:
            requested = self._refresh_requested
        if requested or self._unreadable is not None or time.monotonic() >= self._next_refresh:
            return True
        now_ns = self._now_ns()
        return any(period.end_ns <= now_ns for period in self._periods.values())

    def _maybe_refresh(self) -> None:
        if self._refresh_due():
            self._refresh()

    def _now_ns(self) -> int:
        return int(self._clock() * 1e9)

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _ledger.connect(self.store_path)
            self._inode = _ledger.identity(self.store_path)
        return self._connection

    def _reconnect_if_replaced(self) -> None:
        """A store file deleted or replaced (not just written) is read afresh: an open
        connection would go on reading the old file's ghost."""
        if self._connection is not None and _ledger.identity(self.store_path) != self._inode:
            self._close()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _failed_read(self, error: sqlite3.Error) -> None:
        with self._lock:
            self._read_errors += 1
            first = self._unreadable is None
            self._unreadable = f"{type(error).__name__}: {error}"
        self._close()
        self._totals = {}
        self._exhausted = {}
        if self._enforce:
            _guard.publish({}, self._service_name)  # fail-open
        if first:
            _logger.warning(
                "otel-gemini: budgets cannot read the cost store %s (%s); no alerts and no "
                "enforcement until they can (requests go through); health shows it",
                self.store_path,
                error,
            )

    # --- this process's rows -----------------------------------------------------------------

    def _period(self, index: int, rule: BudgetRule, at_ns: int) -> Period:
        period = self._periods.get(index)
        if period is not None and period.start_ns <= at_ns < period.end_ns:
            return period
        found = period_of(rule.period, rule.zone, at_ns)
        if period is None or found.start_ns > period.start_ns:
            self._periods[index] = found
        return found

    def _add(self, committed: CommittedRows) -> None:
        changes: dict[TotalKey, list[int]] = {}
        periods: dict[TotalKey, Period] = {}
        for index, rule in enumerate(self.rules.budgets):
            for row in committed.rows:
                values = _values(rule, row)
                if not values:
                    continue
                period = self._period(index, rule, row.start_ns)
                for value in values:
                    key = (index, value, period.key)
                    change = changes.get(key)
                    if change is None:
                        change = changes[key] = [0, 0, 0]
                        periods[key] = period
                    cost = row.cost_femto
                    if cost is not None:
                        change[0] += cost
                    elif row.cost_status in _ledger.UNPRICED_STATUSES:
                        change[2] += 1
                    change[1] += 1
        aliases_changed = self._model_enforced and self._learn_aliases(committed)
        if not changes:
            if aliases_changed:
                self._publish(self._exhausted)
            return
        try:
            self._load([key for key in changes if key not in self._totals], periods)
        except sqlite3.Error as error:
            self._failed_read(error)
            return
        for key, (femto, requests, unpriced) in changes.items():
            total = self._totals[key]
            if committed.last_rowid <= total.as_of_rowid:
                continue  # read from the store after this commit: already in the total
            total.femto += femto
            total.requests += requests
            total.unpriced += unpriced
        self._judge(changes, republish=aliases_changed)

    def _load(self, keys: list[TotalKey], periods: Mapping[TotalKey, Period]) -> None:
        """Reads the totals not held yet from the store (one read per rule and period)."""
        if not keys:
            return
        wanted: dict[tuple[int, str], list[str]] = {}
        for index, value, period_key in keys:
            wanted.setdefault((index, period_key), []).append(value)
        with _ledger.snapshot(self._db()) as (connection, rowid):
            for (index, period_key), values in wanted.items():
                rule = self.rules.budgets[index]
                period = periods[(index, values[0], period_key)]
                spend = _ledger.period_spend(connection, rule, period, values)
                for value in values:
                    found = spend.get(value, _ledger.NO_SPEND)
                    self._totals[(index, value, period_key)] = _Total(
                        period, found.femto, found.requests, found.unpriced, rowid
                    )

    # --- judging ------------------------------------------------------------------------------

    def _judge(
        self, keys: Iterable[TotalKey], *, rebuild: bool = False, republish: bool = False
    ) -> None:
        """Alerts on the totals at ``keys``; with enforcement, closes the scopes among them
        now at or over a hard limit (``rebuild``: the closed set is made anew from them;
        ``republish``: the aliases changed, so the closed set is handed over again)."""
        now_ns = self._now_ns()
        closed: dict[_guard.ScopeKey, _guard.Exhaustion] | None = {} if rebuild else None
        for key in keys:
            total = self._totals.get(key)
            if total is None:
                continue
            rule = self.rules.budgets[key[0]]
            self._check(rule, key[1], total, now_ns)
            if not (self._enforce and rule.enforce) or not self._over(rule, total, now_ns):
                continue
            scope = (rule.scope, key[1])
            if closed is None:
                if scope in self._exhausted:
                    continue
                closed = dict(self._exhausted)  # copied once, when something changes
            closed.setdefault(scope, _exhaustion(rule, key[1], total))
        if self._enforce and closed is not None:
            self._exhausted = closed
            self._publish(closed)
        elif republish:
            self._publish(self._exhausted)

    def _learn_aliases(self, committed: CommittedRows) -> bool:
        """Notes the aliases among this process's new rows (:meth:`_publish` then closes
        them with their model); True when one now points to another model."""
        changed = False
        for row in committed.rows:
            if row.request_model is not None and _ledger.note_alias(
                self._aliases, row.model, row.request_model, row.start_ns
            ):
                changed = True
        return changed

    def _publish(self, closed: dict[_guard.ScopeKey, _guard.Exhaustion]) -> None:
        """Hands the closed scopes to the request guard, with every alias of a closed model
        (the request names the alias; the model that answers it is the one spent)."""
        published = closed
        for alias, (_, model) in self._aliases.items():
            hit = closed.get((SCOPE_MODEL, model))
            if hit is not None and (SCOPE_MODEL, alias) not in closed:
                if published is closed:
                    published = dict(closed)
                published[(SCOPE_MODEL, alias)] = hit
        _guard.publish(published, self._service_name, self._clock)

    @staticmethod
    def _over(rule: BudgetRule, total: _Total, now_ns: int) -> bool:
        period = total.period
        return period.start_ns <= now_ns < period.end_ns and total.femto >= to_femto(rule.limit)

    def _check(self, rule: BudgetRule, value: str, total: _Total, now_ns: int) -> None:
        limit_femto = to_femto(rule.limit)
        utilization = Decimal(total.femto) / Decimal(limit_femto)
        if total.period.start_ns <= now_ns < total.period.end_ns:
            self._note_utilization(rule, value, float(utilization))
        for threshold in rule.thresholds:
            if total.femto < threshold * limit_femto:
                break
            first = self._first_time(
                (rule.name, value, total.period.key, _fraction_text(threshold)), now_ns
            )
            if first is None:
                return
            if first:
                self._emit(self._budget_alert(rule, value, total, threshold, utilization))

    def _first_time(self, memo: tuple[str, str, str, str], now_ns: int) -> bool | None:
        """Whether the alert ``memo`` (rule, scope value, period, threshold) fires now for the
        first time: claimed in the store's ledger, so other processes and restarts do not
        repeat it. ``None`` when the store cannot be read (counted; fail-open)."""
        if memo in self._fired:
            return False
        try:
            first = _ledger.first_alert(self._db(), *memo, now_ns)
        except sqlite3.Error as error:
            self._failed_read(error)
            return None
        self._fired.add(memo)
        return first

    def _note_utilization(self, rule: BudgetRule, value: str, utilization: float) -> None:
        if rule.scope in _PERSONAL_SCOPES and not self.rules.metric_user_ids:
            key = (rule.name, rule.scope, "")  # the rule's most spent user or session
            utilization = max(utilization, self._utilization.get(key, 0.0))
        else:
            key = (rule.name, rule.scope, value)
        with self._lock:
            self._utilization[key] = utilization

    def _budget_alert(
        self, rule: BudgetRule, value: str, total: _Total, threshold: Decimal, utilization: Decimal
    ) -> BudgetAlert:
        kind = KIND_LIMIT if threshold >= 1 else KIND_WARNING
        spend = usd_text(femto_decimal(total.femto)) or "0"
        limit = usd_text(rule.limit) or "0"
        percent = _fraction_text(threshold * 100)
        who = "total spend" if rule.scope == "total" else f"{rule.scope} {value!r}"
        verb = "reached its limit" if kind == KIND_LIMIT else f"reached {percent} % of its limit"
        return BudgetAlert(
            kind=kind,
            rule=rule.name,
            scope=rule.scope,
            scope_value=value,
            period_start=total.period.start.isoformat(),
            period_end=total.period.end.isoformat(),
            spend_usd=spend,
            limit_usd=limit,
            utilization=_fraction_text(utilization.quantize(Decimal("0.0001"))),
            threshold=_fraction_text(threshold),
            message=(
                f"budget {rule.name!r}: {who} {verb}: ${spend} of ${limit} this {rule.period} "
                f"(until {total.period.end.isoformat()})"
            ),
        )

    def _emit(self, alert: BudgetAlert) -> None:
        with self._lock:
            self._alerts += 1
        log_alert(alert)
        self._alert_counter.add(
            1, {"otel_gemini.budget.rule": alert.rule, "otel_gemini.budget.alert.kind": alert.kind}
        )
        if self.webhook is not None:
            self.webhook.send(alert)

    # --- re-reading everything ---------------------------------------------------------------

    def _refresh(self) -> None:
        with self._lock:
            self._refresh_requested = False
        self._next_refresh = time.monotonic() + self.rules.interval
        now_ns = self._now_ns()
        totals: dict[TotalKey, _Total] = {}
        aliases: dict[str, tuple[int, str]] = {}
        try:
            self._reconnect_if_replaced()
            with _ledger.snapshot(self._db()) as (connection, rowid):
                for index, rule in enumerate(self.rules.budgets):
                    period = period_of(rule.period, rule.zone, now_ns)
                    self._periods[index] = period
                    for value, spend in _ledger.period_spend(connection, rule, period).items():
                        totals[(index, value, period.key)] = _Total(
                            period, spend.femto, spend.requests, spend.unpriced, rowid
                        )
                anomalies = [
                    (anomaly, *_ledger.anomaly_costs(connection, anomaly, now_ns))
                    for anomaly in self.rules.anomalies
                ]
                if self._model_enforced:
                    since = min(
                        self._periods[index].start_ns
                        for index, rule in enumerate(self.rules.budgets)
                        if rule.enforce and rule.scope == SCOPE_MODEL
                    )
                    aliases = _ledger.model_aliases(connection, since)
        except sqlite3.Error as error:
            self._failed_read(error)
            return
        with self._lock:
            recovered = self._unreadable is not None
            self._unreadable = None
            self._utilization = {}
        if recovered:
            _logger.warning("otel-gemini: budgets read the cost store %s again", self.store_path)
        self._totals = totals
        if self._model_enforced:
            self._aliases = aliases
        current = {period.key for period in self._periods.values()}
        current.add(period_of("hour", _UTC_ZONE, now_ns).key)
        self._fired = {memo for memo in self._fired if memo[2] in current}
        self._judge(list(totals), rebuild=True)
        for anomaly, recent_spend, baseline_spend in anomalies:
            self._check_anomaly(anomaly, recent_spend, baseline_spend, now_ns)

    def _check_anomaly(
        self,
        rule: AnomalyRule,
        recent: Mapping[str, tuple[int, int]],
        baseline: Mapping[str, tuple[int, int]],
        now_ns: int,
    ) -> None:
        hour = period_of("hour", _UTC_ZONE, now_ns)
        for value, (recent_femto, recent_requests) in recent.items():
            base_femto, base_requests = baseline.get(value, (0, 0))
            if not rule.anomalous(recent_femto, recent_requests, base_femto, base_requests):
                continue
            first = self._first_time(
                (rule.name, value, hour.key, _fraction_text(rule.ratio)), now_ns
            )
            if first is None:
                return
            if first:
                self._emit(
                    _anomaly_alert(
                        rule, value, hour, recent_femto, recent_requests, base_femto, base_requests
                    )
                )

    # --- state ------------------------------------------------------------------------------

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            snapshot = dict(self._utilization)
        for (rule, scope, value), utilization in snapshot.items():
            attributes = {"otel_gemini.budget.rule": rule, "otel_gemini.budget.scope": scope}
            if value:
                attributes["otel_gemini.budget.scope_value"] = value
            yield Observation(utilization, attributes)

    def loop_statuses(self) -> list[LoopStatus]:
        """The evaluator's (and webhook's) loops, for health."""
        loops = [self._worker.loop.status()]
        if self.webhook is not None:
            loops.append(self.webhook.loop_status())
        return loops

    def stats(self) -> dict[str, Any]:
        """Health's ``budgets`` section."""
        with self._lock:
            result: dict[str, Any] = {
                "rules": len(self.rules.budgets) + len(self.rules.anomalies),
                "enforcing": self._enforce,
                # Scopes closed (an alias closed with its model is not one more).
                "exhausted_scopes": (
                    len(set(_guard.exhausted_scopes().values())) if self._enforce else 0
                ),
                "refused_requests": _guard.refused_requests(),
                "alerts": self._alerts,
                "totals_readable": self._unreadable is None,
                "read_errors": self._read_errors,
            }
        if self.webhook is not None:
            result["webhook"] = self.webhook.stats()
        return result

    def problems(self) -> list[str]:
        """Health reasons (degraded): totals unreadable (fail-open), webhook failures."""
        reasons = []
        with self._lock:
            unreadable = self._unreadable
        if unreadable is not None:
            what = "enforcement lets every request through" if self._enforce else "no alerts"
            reasons.append(
                f"budgets cannot read the cost store {self.store_path} ({unreadable}); {what} "
                "until they can"
            )
        if self.webhook is not None:
            reasons.extend(self.webhook.problems())
        return reasons


_UTC_ZONE: Final = ZoneInfo("UTC")


def _exhaustion(rule: BudgetRule, value: str, total: _Total) -> _guard.Exhaustion:
    period = total.period
    return _guard.Exhaustion(
        rule.name,
        rule.scope,
        value,
        period.end,
        usd_text(femto_decimal(total.femto)) or "0",
        usd_text(rule.limit) or "0",
        period.end_ns / 1e9,
    )


def _anomaly_alert(
    rule: AnomalyRule,
    value: str,
    hour: Period,
    recent_femto: int,
    recent_requests: int,
    base_femto: int,
    base_requests: int,
) -> BudgetAlert:
    recent_cpr = femto_decimal(recent_femto) / recent_requests
    base_cpr = femto_decimal(base_femto) / base_requests
    measured = _fraction_text((recent_cpr / base_cpr).quantize(Decimal("0.01")))
    recent_text = usd_text(recent_cpr.quantize(Decimal("1E-15"))) or "0"
    base_text = usd_text(base_cpr.quantize(Decimal("1E-15"))) or "0"
    ratio = _fraction_text(rule.ratio)
    return BudgetAlert(
        kind=KIND_ANOMALY,
        rule=rule.name,
        scope=rule.by,
        scope_value=value,
        period_start=hour.start.isoformat(),
        period_end=hour.end.isoformat(),
        spend_usd=usd_text(femto_decimal(recent_femto)) or "0",
        limit_usd=None,
        utilization=None,
        threshold=ratio,
        message=(
            f"anomaly {rule.name!r}: cost per request of {rule.by} {value!r} in the last hour "
            f"is ${recent_text}, {measured} x the previous 7 days' ${base_text} "
            f"(alerting at {ratio} x)"
        ),
        details={
            "recent_cost_per_request": recent_text,
            "baseline_cost_per_request": base_text,
            "ratio": measured,
            "recent_requests": str(recent_requests),
            "baseline_requests": str(base_requests),
        },
    )
