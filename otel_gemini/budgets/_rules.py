"""Budget and anomaly rules: a TOML file, validated up front with one-line errors."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_BUDGETS: Final = "OTEL_GEMINI_BUDGETS"

MIN_LIMIT_USD: Final = Decimal("0.000001")
MAX_LIMIT_USD: Final = Decimal(10**9)

SCOPE_TOTAL: Final = "total"
SCOPE_USER: Final = "user"
SCOPE_SESSION: Final = "session"
SCOPE_MODEL: Final = "model"
SCOPE_SERVICE: Final = "service.name"
SCOPE_TAG: Final = "tag"
SCOPES: Final = (SCOPE_TOTAL, SCOPE_USER, SCOPE_SESSION, SCOPE_MODEL, SCOPE_SERVICE, SCOPE_TAG)

PERIODS: Final = ("hour", "day", "month")
# The longest each period can be (a DST day has 25 hours), and the span an anomaly rule reads
# (the last hour and the 7 days before it): a cost store must keep rows at least this long.
_PERIOD_DAYS: Final = {"hour": 1 / 24, "day": 25 / 24, "month": 31 + 1 / 24}
_ANOMALY_DAYS: Final = 7 + 1 / 24
ANOMALY_GROUPS: Final = (SCOPE_MODEL, SCOPE_SERVICE)
WEBHOOK_FORMATS: Final = ("json", "slack")

DEFAULT_INTERVAL_SECONDS: Final = 30.0
DEFAULT_WEBHOOK_QUEUE: Final = 1000
DEFAULT_WEBHOOK_TIMEOUT: Final = 5.0
DEFAULT_WEBHOOK_ATTEMPTS: Final = 5


class BudgetConfigError(ValueError):
    """A budgets file or setting cannot be used; the message names the rule and the key."""


@dataclass(frozen=True)
class BudgetRule:
    """Spend in one scope over one period, against a limit in USD."""

    name: str
    scope: str
    """``total``, ``user``, ``session``, ``model``, ``service.name`` or ``tag``."""
    period: str
    """``hour``, ``day`` or ``month``, in :attr:`timezone`."""
    timezone: str
    limit: Decimal
    warn_at: tuple[Decimal, ...]
    """Fractions of the limit that warn (e.g. 0.8); reaching 1 is the limit's own alert."""
    tag: str | None = None
    """With scope ``tag``: the tag whose requests count."""
    enforce: bool = False
    """Refuse requests in a scope at or over the limit (opt-in)."""

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def thresholds(self) -> tuple[Decimal, ...]:
        """Every threshold alerted on, ascending, the limit (1) last."""
        return (*self.warn_at, Decimal(1))


@dataclass(frozen=True)
class AnomalyRule:
    """Cost per request in the last hour against the previous 7 days, by model or service."""

    name: str
    by: str
    """``model`` or ``service.name``."""
    ratio: Decimal
    """Alert when the last hour's cost per request is at least this many times the baseline."""
    min_requests: int = 5
    """Requests the last hour needs before it is judged (one odd request is no trend)."""

    def anomalous(
        self, recent_femto: int, recent_requests: int, base_femto: int, base_requests: int
    ) -> bool | None:
        """Whether the last hour's cost per request is at least :attr:`ratio` times the
        baseline's, exactly; ``None`` when too few requests (or no baseline cost) to judge."""
        if min(recent_requests, base_requests) < self.min_requests or base_femto <= 0:
            return None
        # recent / recent_requests >= ratio * base / base_requests, without dividing.
        return Decimal(recent_femto * base_requests) >= self.ratio * base_femto * recent_requests


@dataclass(frozen=True)
class WebhookSettings:
    """Where alerts are POSTed (JSON); ``format="slack"`` sends Slack's ``{"text": ...}``."""

    url: str = field(repr=False)  # a Slack webhook URL is a secret: never in a repr or log
    format: str = "json"
    timeout: float = DEFAULT_WEBHOOK_TIMEOUT
    max_queue: int = DEFAULT_WEBHOOK_QUEUE
    attempts: int = DEFAULT_WEBHOOK_ATTEMPTS
    retry_initial_seconds: float = 1.0
    """The first backoff between tries; it doubles (up to 30 s)."""

    @property
    def host(self) -> str:
        """What logs and health may name: the host only."""
        return urlsplit(self.url).hostname or "?"


@dataclass(frozen=True)
class BudgetRules:
    """A whole budgets file: rules, and how alerts are delivered."""

    budgets: tuple[BudgetRule, ...] = ()
    anomalies: tuple[AnomalyRule, ...] = ()
    webhook: WebhookSettings | None = None
    interval: float = DEFAULT_INTERVAL_SECONDS
    """Seconds between evaluations that do not wait for a new row: other processes' spend,
    period roll-over, anomalies."""
    metric_user_ids: bool = False
    """Put user and session ids on the utilization metric (off: by rule only)."""
    source: str = "<rules>"

    def check_retention(self, retention_days: float | None, setting: str) -> None:
        """Refuses a cost store that deletes rows inside a rule's period: the re-read totals
        would fall and an exhausted scope open again. ``None`` or 0: rows are kept for ever."""
        needed = max(
            [_PERIOD_DAYS[rule.period] for rule in self.budgets]
            + [_ANOMALY_DAYS for _ in self.anomalies[:1]],
            default=0.0,
        )
        if retention_days and retention_days < needed:
            raise BudgetConfigError(
                f"{setting} is {retention_days:g} days, shorter than the budget rules read "
                f"({needed:.4g} days): the store would delete spend they count; raise it, or 0 "
                "keeps rows for ever"
            )

    @property
    def enforced(self) -> bool:
        return any(rule.enforce for rule in self.budgets)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BudgetRules:
        """Reads and validates a TOML rules file (:class:`BudgetConfigError` if bad)."""
        location = Path(path).expanduser()
        try:
            text = location.read_text(encoding="utf-8")
        except OSError as error:
            raise BudgetConfigError(
                f"cannot read the budgets file {str(location)!r}: {error.strerror or error}"
            ) from None
        return cls.parse(text, source=str(location))

    @classmethod
    def parse(cls, text: str, *, source: str = "<rules>") -> BudgetRules:
        """Validates TOML text (see docs/budgets.md for the keys)."""
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise BudgetConfigError(f"budgets file {source}: not valid TOML: {error}") from None
        return cls.from_dict(document, source=source)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], *, source: str = "<rules>") -> BudgetRules:
        """Validates an already parsed document."""
        _only(document, ("settings", "webhook", "budget", "anomaly"), f"budgets file {source}")
        settings = _table(document, "settings", f"budgets file {source}")
        _only(settings, ("interval_seconds", "metric_user_ids"), "[settings]")
        interval = _number(settings, "interval_seconds", "[settings]", DEFAULT_INTERVAL_SECONDS)
        if interval <= 0:
            raise BudgetConfigError("[settings]: key 'interval_seconds' must be positive")
        metric_user_ids = _bool(settings, "metric_user_ids", "[settings]", False)
        budgets = tuple(
            _budget(entry, index) for index, entry in enumerate(_list(document, "budget"))
        )
        anomalies = tuple(
            _anomaly(entry, index) for index, entry in enumerate(_list(document, "anomaly"))
        )
        names = [rule.name for rule in budgets] + [rule.name for rule in anomalies]
        for name in names:
            if names.count(name) > 1:
                raise BudgetConfigError(f"budget rule {name!r}: key 'name' is used twice")
        webhook = _webhook(document["webhook"]) if "webhook" in document else None
        return cls(budgets, anomalies, webhook, float(interval), metric_user_ids, source)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> BudgetRules | None:
        """The rules ``OTEL_GEMINI_BUDGETS`` names, or ``None`` when it is unset."""
        path = environ.get(ENV_BUDGETS, "").strip()
        return cls.load(path) if path else None


def rules_from(
    value: BudgetRules | str | os.PathLike[str] | Mapping[str, Any] | None,
    environ: Mapping[str, str],
) -> BudgetRules | None:
    """``configure(budgets=...)``: rules, a file path, a parsed document, or ``None`` for
    ``OTEL_GEMINI_BUDGETS``."""
    if value is None:
        return BudgetRules.from_env(environ)
    if isinstance(value, BudgetRules):
        return value
    if isinstance(value, Mapping):
        return BudgetRules.from_dict(value)
    return BudgetRules.load(value)


# --- validation helpers ---------------------------------------------------------------------


def _only(table: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in keys:
            raise BudgetConfigError(f"{where}: unknown key {key!r} (known: {', '.join(keys)})")


def _table(document: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, Mapping):
        raise BudgetConfigError(f"{where}: key {key!r} must be a table")
    return value


def _list(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        raise BudgetConfigError(f"budgets file: key {key!r} must be an array of tables [[{key}]]")
    return value


def _name(entry: Mapping[str, Any], kind: str, index: int) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BudgetConfigError(f"{kind} rule #{index + 1}: key 'name' must be a non-empty string")
    return name.strip()


def _number(entry: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BudgetConfigError(f"{where}: key {key!r} must be a number (got {value!r})")
    return float(value)


def _bool(entry: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = entry.get(key, default)
    if not isinstance(value, bool):
        raise BudgetConfigError(f"{where}: key {key!r} must be true or false (got {value!r})")
    return value


def _decimal(value: Any, where: str, key: str) -> Decimal:
    # Strings and integers are exact; a TOML float is taken by its shortest text (0.01 is
    # the cent the user wrote, not the binary fraction nearest to it).
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BudgetConfigError(f"{where}: key {key!r} must be a number (got {value!r})")
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
    except InvalidOperation:
        raise BudgetConfigError(f"{where}: key {key!r} must be a number (got {value!r})") from None
    if not amount.is_finite():
        raise BudgetConfigError(f"{where}: key {key!r} must be a finite number (got {value!r})")
    return amount


def _budget(entry: Mapping[str, Any], index: int) -> BudgetRule:
    name = _name(entry, "budget", index)
    where = f"budget rule {name!r}"
    _only(
        entry,
        ("name", "scope", "tag", "period", "timezone", "limit_usd", "warn_at", "enforce"),
        where,
    )
    scope = entry.get("scope", SCOPE_TOTAL)
    if scope not in SCOPES:
        raise BudgetConfigError(
            f"{where}: key 'scope' must be one of {', '.join(SCOPES)} (got {scope!r})"
        )
    tag = entry.get("tag")
    if scope == SCOPE_TAG:
        if not isinstance(tag, str) or not tag:
            raise BudgetConfigError(f"{where}: key 'tag' must name the tag (scope is 'tag')")
    elif tag is not None:
        raise BudgetConfigError(f"{where}: key 'tag' is only for scope 'tag'")
    period = entry.get("period", "day")
    if period not in PERIODS:
        raise BudgetConfigError(
            f"{where}: key 'period' must be one of {', '.join(PERIODS)} (got {period!r})"
        )
    timezone = entry.get("timezone", "UTC")
    if not isinstance(timezone, str):
        raise BudgetConfigError(f"{where}: key 'timezone' must be an IANA name such as 'UTC'")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BudgetConfigError(
            f"{where}: key 'timezone' is not a known time zone (got {timezone!r})"
        ) from None
    if "limit_usd" not in entry:
        raise BudgetConfigError(f"{where}: key 'limit_usd' is required")
    limit = _decimal(entry["limit_usd"], where, "limit_usd")
    # Money is counted in femto-dollars: a limit must be at least one, and small enough to
    # count exactly (a billion dollars is beyond any Gemini budget).
    if not MIN_LIMIT_USD <= limit <= MAX_LIMIT_USD:
        raise BudgetConfigError(
            f"{where}: key 'limit_usd' must be from {MIN_LIMIT_USD} to {MAX_LIMIT_USD:,} "
            f"(got {limit})"
        )
    raw_warn = entry.get("warn_at", [0.8])
    if not isinstance(raw_warn, list):
        raw_warn = [raw_warn]
    warn_at = sorted({_decimal(value, where, "warn_at") for value in raw_warn})
    for fraction in warn_at:
        if not 0 < fraction < 1:
            raise BudgetConfigError(
                f"{where}: key 'warn_at' takes fractions of the limit between 0 and 1, "
                f"e.g. 0.8 (got {fraction})"
            )
    return BudgetRule(
        name=name,
        scope=scope,
        period=period,
        timezone=timezone,
        limit=limit,
        warn_at=tuple(warn_at),
        tag=tag,
        enforce=_bool(entry, "enforce", where, False),
    )


def _anomaly(entry: Mapping[str, Any], index: int) -> AnomalyRule:
    name = _name(entry, "anomaly", index)
    where = f"anomaly rule {name!r}"
    _only(entry, ("name", "by", "ratio", "min_requests"), where)
    by = entry.get("by", SCOPE_MODEL)
    if by == "service":
        by = SCOPE_SERVICE
    if by not in ANOMALY_GROUPS:
        raise BudgetConfigError(f"{where}: key 'by' must be 'model' or 'service.name' (got {by!r})")
    ratio = _decimal(entry.get("ratio", 3), where, "ratio")
    if ratio <= 1:
        raise BudgetConfigError(f"{where}: key 'ratio' must be more than 1 (got {ratio})")
    min_requests = entry.get("min_requests", 5)
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 1:
        raise BudgetConfigError(
            f"{where}: key 'min_requests' must be a whole number of at least 1 "
            f"(got {min_requests!r})"
        )
    return AnomalyRule(name=name, by=by, ratio=ratio, min_requests=min_requests)


def _webhook(table: Any) -> WebhookSettings:
    where = "[webhook]"
    if not isinstance(table, Mapping):
        raise BudgetConfigError(f"{where} must be a table")
    _only(
        table,
        (
            "url",
            "url_env",
            "format",
            "timeout_seconds",
            "max_queue",
            "attempts",
            "retry_initial_seconds",
        ),
        where,
    )
    url = table.get("url")
    if "url_env" in table:  # keeps a Slack webhook's secret out of the rules file
        variable = table["url_env"]
        url = os.environ.get(str(variable), "") if isinstance(variable, str) else None
        if not url:
            raise BudgetConfigError(f"{where}: key 'url_env' names {variable!r}, which is unset")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise BudgetConfigError(f"{where}: key 'url' must be an http(s) URL")
    if not urlsplit(url).hostname:
        raise BudgetConfigError(f"{where}: key 'url' has no host")
    fmt = table.get("format", "json")
    if fmt not in WEBHOOK_FORMATS:
        raise BudgetConfigError(f"{where}: key 'format' must be 'json' or 'slack' (got {fmt!r})")
    timeout = _number(table, "timeout_seconds", where, DEFAULT_WEBHOOK_TIMEOUT)
    max_queue = table.get("max_queue", DEFAULT_WEBHOOK_QUEUE)
    attempts = table.get("attempts", DEFAULT_WEBHOOK_ATTEMPTS)
    for key, value in (("max_queue", max_queue), ("attempts", attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BudgetConfigError(f"{where}: key {key!r} must be a whole number of at least 1")
    backoff = _number(table, "retry_initial_seconds", where, 1.0)
    if timeout <= 0 or backoff < 0:
        raise BudgetConfigError(
            f"{where}: keys 'timeout_seconds' (positive) and 'retry_initial_seconds' "
            "(0 or more) take seconds"
        )
    return WebhookSettings(url, fmt, timeout, max_queue, attempts, backoff)
