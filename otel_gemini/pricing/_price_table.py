"""``PriceTable``: dated Gemini prices, looked up by model name, and ``PriceTable.cost``."""

from __future__ import annotations

import difflib
import os
import re
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Final

from otel_gemini._limits import MAX_NAME_CHARS, quote
from otel_gemini._model_names import bare_model_name
from otel_gemini.pricing import _cost
from otel_gemini.pricing._buckets import split_tokens, usage_buckets
from otel_gemini.pricing._cost import Cost
from otel_gemini.pricing._rates import Rates, bills_audio_seconds, price_usage, resolve_rates
from otel_gemini.pricing._table_file import (
    ModelSpec,
    PeriodSpec,
    PriceTableError,
    ServiceTierRule,
    TableSpec,
    read_table,
    read_table_file,
)
from otel_gemini.pricing._usage import Usage, implausible_reason

ENV_PRICES: Final = "OTEL_GEMINI_PRICES"
STANDARD: Final = "standard"
STANDARD_NAMES: Final = frozenset((STANDARD, "unspecified"))
"""Service tiers priced at the standard rate (google-genai's default tier is ``unspecified``)."""
_DEFAULT_DATA: Final = "gemini.toml"
_EARLIEST_NS: Final = -(1 << 63)
_NS_PER_DAY: Final = 86_400 * 10**9
_EPOCH: Final = date(1970, 1, 1)
_EPOCH_UTC: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
# "-001" style stable-version suffixes price like the family (gemini-2.0-flash-001).
_VERSION_SUFFIX: Final = re.compile(r"-\d{3}$")
_LOOKUP_CACHE_SIZE: Final = 4096


def _day_ns(day: date) -> int:
    return (day - _EPOCH).days * _NS_PER_DAY


def _at_ns(at: datetime | date | None) -> int:
    if at is None:
        return time.time_ns()
    if isinstance(at, datetime):
        aware = at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)
        return (aware - _EPOCH_UTC) // timedelta(microseconds=1) * 1000
    return _day_ns(at)


@lru_cache(maxsize=1024)
def normalize_model_name(name: str) -> str:
    """The table's form of a model name: no resource prefix, no ``@version``, lower case.

    ``models/gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash@001`` and
    ``google/gemini-2.5-flash`` all become ``gemini-2.5-flash``.
    """
    bare = bare_model_name(name).strip().lower()
    at = bare.find("@")
    if at != -1:
        bare = bare[:at]
    slash = bare.rfind("/")
    return bare[slash + 1 :] if slash != -1 else bare


@lru_cache(maxsize=1024)
def model_family_name(name: str) -> str:
    """:func:`normalize_model_name` without a stable-version suffix, which prices like its
    family: ``models/gemini-2.0-flash-001`` and ``gemini-2.0-flash`` are both
    ``gemini-2.0-flash``. One model however a request or a response spells it (budgets key
    their ``model`` scope on it)."""
    return _VERSION_SUFFIX.sub("", normalize_model_name(name))


@dataclass(frozen=True)
class PricePeriod:
    """One dated set of prices of a model, resolved for every service tier and prompt size."""

    spec: PeriodSpec
    starts_ns: int
    thresholds: tuple[int, ...]
    rates: Mapping[str, tuple[Rates, ...]]
    """Service tier → rates per prompt-size tier (index 0: at or below the first threshold)."""

    @classmethod
    def build(cls, spec: PeriodSpec, rules: Mapping[str, ServiceTierRule]) -> PricePeriod:
        tiers = spec.tiers or ()
        all_rules: dict[str, ServiceTierRule | None] = {STANDARD: None, **rules}
        all_rules.update(spec.service_tiers)
        rates = {
            name: (
                resolve_rates(spec.prices, None, rule),
                *(resolve_rates(spec.prices, tier.prices, rule) for tier in tiers),
            )
            for name, rule in all_rules.items()
        }
        starts_ns = _day_ns(spec.starts) if spec.starts else _EARLIEST_NS
        return cls(spec, starts_ns, tuple(tier.above for tier in tiers), rates)

    def rates_for(self, service_tier: str, prompt_tokens: int) -> Rates:
        by_tier = self.rates.get(service_tier) or self.rates[STANDARD]
        index = 0
        for above in self.thresholds:
            if prompt_tokens > above:
                index += 1
        return by_tier[index]


class PricedModel:
    """A price-table entry with its periods in date order."""

    __slots__ = ("_starts", "id", "live", "periods", "spec")

    def __init__(self, spec: ModelSpec, rules: Mapping[str, ServiceTierRule]) -> None:
        self.spec = spec
        self.id = spec.id
        self.live = bool(spec.live)
        ordered = sorted(spec.periods, key=lambda period: period.starts or date.min)
        self.periods = tuple(PricePeriod.build(period, rules) for period in ordered)
        self._starts = [period.starts_ns for period in self.periods]

    def period_at(self, at_ns: int) -> PricePeriod:
        """The period in effect at ``at_ns``; before the first period, the first one."""
        index = bisect_right(self._starts, at_ns) - 1
        return self.periods[index if index >= 0 else 0]


class PriceTable:
    """Dated Gemini prices (a TOML table shipped in the package, plus optional overrides).

    Get one with :meth:`default`, :meth:`load` or :meth:`from_env`; it is immutable and safe to
    share between threads.

    >>> table = PriceTable.default()
    >>> table.cost("models/gemini-2.5-flash", Usage(input_tokens=1000, output_tokens=200)).total
    Decimal('0.0008')
    """

    def __init__(self, spec: TableSpec) -> None:
        self._spec = spec
        self.version: str = spec.version
        """Identifies the prices used: the shipped table's version, ``+`` each override's."""
        self.files: tuple[str, ...] = spec.files
        """The files this table was read from (the shipped one first)."""
        self._models = tuple(PricedModel(model, spec.service_tiers) for model in spec.models)
        self._exact: dict[str, PricedModel] = {}
        prefixes: list[tuple[str, PricedModel]] = []
        self._patterns: list[tuple[re.Pattern[str], PricedModel]] = []
        for model in self._models:
            for name in model.spec.names:
                self._exact[name] = model
            prefixes.extend((prefix, model) for prefix in model.spec.prefixes)
            self._patterns.extend((re.compile(p), model) for p in model.spec.patterns)
        self._prefixes = sorted(prefixes, key=lambda item: len(item[0]), reverse=True)
        self._lookups: dict[str, PricedModel | None] = {}

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped with this version of otel-gemini."""
        return _default_table()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, base: PriceTable | None = None) -> PriceTable:
        """``base`` (default: the shipped table) with the override file at ``path`` merged in.

        Raises :class:`PriceTableError` naming the file, the entry and the key of every
        problem (bad TOML, unknown key, negative price, overlapping dates, name conflicts).
        """
        base_spec = (base or cls.default())._spec
        return cls(read_table_file(Path(path), base=base_spec))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PriceTable:
        """The shipped table, with ``OTEL_GEMINI_PRICES`` (an override file) merged in if set."""
        path = (os.environ if environ is None else environ).get(ENV_PRICES, "").strip()
        if not path:
            return cls.default()
        try:
            return cls.load(path)
        except PriceTableError as error:
            raise PriceTableError(
                [f"{ENV_PRICES}={path}: the price override file is unusable", *error.problems]
            ) from None

    # --- lookup ------------------------------------------------------------------------------

    def match(self, model: str) -> str | None:
        """The id of the entry that prices ``model`` (e.g. ``gemini-2.5-flash``), or ``None``."""
        found = self._resolve(model)
        return found.id if found else None

    def _find_as_written(self, model: str) -> PricedModel | None:
        if len(model) > MAX_NAME_CHARS:
            return None  # never priced (see cost_at_ns): not worth lowering 7 MiB of text
        written = model.strip().lower()
        if "/" not in written:
            return None
        at = written.find("@")
        for name in (written, written[:at]) if at != -1 else (written,):
            exact = self._exact.get(name)
            if exact is not None:
                return exact
            for prefix, entry in self._prefixes:
                if "/" in prefix and name.startswith(prefix):
                    return entry
        return None

    def most_specific_first(self, models: Sequence[str]) -> Sequence[str]:
        """``models`` (a span's names, tried in order) with any name that an entry prices as
        written (a tuned model or endpoint path) moved first: an endpoint's own price wins
        over the base model its response names."""
        written = [model for model in models if self._find_as_written(model) is not None]
        if not written:
            return models
        return [*written, *(model for model in models if model not in written)]

    def entry(self, name: str) -> PricedModel | None:
        """The entry pricing ``name`` (any form a span may carry), else the entry whose id
        ``name`` is (``gemini-2.0-flash-live``): what ``otel-gemini prices NAME`` shows."""
        found = self._resolve(name)
        if found is None:
            wanted = name.strip().lower()
            found = next((model for model in self._models if model.id == wanted), None)
        return found

    def suggestions(self, name: str, count: int = 3) -> list[str]:
        """Table ids and names closest to ``name`` (for a lookup that found nothing)."""
        known = {model.id for model in self._models} | set(self._exact)
        wanted = normalize_model_name(name)
        return difflib.get_close_matches(wanted, sorted(known), n=count, cutoff=0.6)

    def _find(self, name: str) -> PricedModel | None:
        exact = self._exact.get(name)
        if exact is not None:
            return exact
        for prefix, model in self._prefixes:
            if name.startswith(prefix):
                return model
        for pattern, model in self._patterns:
            if pattern.search(name):
                return model
        return None

    def _resolve(self, model: str) -> PricedModel | None:
        if len(model) > MAX_NAME_CHARS:
            # Never looked up nor cached: the cache would keep every such name alive.
            return None
        try:
            return self._lookups[model]
        except KeyError:
            pass
        # A name with a path (a tuned model, a Vertex endpoint) is first looked up as
        # written: an override may price `projects/p/locations/l/endpoints/123` itself,
        # and the last segment alone (`123`) would never match it.
        found = self._find_as_written(model)
        name = normalize_model_name(model)
        if found is None:
            found = self._find(name)
        if found is None and _VERSION_SUFFIX.search(name):
            found = self._find(model_family_name(model))
        if len(self._lookups) >= _LOOKUP_CACHE_SIZE:
            self._lookups.clear()
        self._lookups[model] = found
        return found

    # --- pricing -----------------------------------------------------------------------------

    def cost(
        self,
        model: str,
        usage: Usage,
        at: datetime | date | None = None,
        *,
        service_tier: str | None = None,
        live: bool | None = None,
    ) -> Cost:
        """What ``usage`` of ``model`` cost at ``at`` (default: now; naive datetimes are UTC).

        ``service_tier`` is ``standard`` (default; also ``unspecified``), ``batch``, ``flex`` or
        ``priority`` (a tier the table has no rates for costs "unknown");
        ``live`` says the usage comes from a Live API session (default: whether the model is a
        Live model), which sets the audio-tokens-per-second rate used for per-minute prices.
        The prompt size (``input_tokens``, cached included) picks the tier for every kind of
        token of the request.
        """
        return self.cost_at_ns(model, usage, _at_ns(at), service_tier=service_tier, live=live)

    def cost_at_ns(
        self,
        model: str,
        usage: Usage,
        at_ns: int,
        *,
        service_tier: str | None = None,
        live: bool | None = None,
    ) -> Cost:
        """:meth:`cost` with the time as nanoseconds since the epoch (a span's start time)."""
        found = self._resolve(model)
        implausible = implausible_reason(usage)
        empty = usage.is_empty
        if implausible is not None:
            # Checked before anything else: such counts are never priced nor bucketed (the
            # buckets would carry them to Langfuse, which prices usage it is given).
            return Cost(
                status=_cost.IMPLAUSIBLE_USAGE,
                model=model,
                prices_version=self.version,
                price_model=found.id if found else None,
                reason=f"implausible usage: {implausible}",
            )
        if empty and (found is None or not _has_audio_seconds(usage)):
            return _no_usage(model, self.version, found)
        if found is None:
            if len(model) > MAX_NAME_CHARS:
                reason = f"model name longer than {MAX_NAME_CHARS} characters: {quote(model)}"
            else:
                reason = f"no price for model {model!r}"
            return Cost(
                status=_cost.UNKNOWN_MODEL,
                model=model,
                prices_version=self.version,
                details=usage_buckets(usage),
                reason=reason,
            )
        period = found.period_at(at_ns)
        tier = service_tier.strip().lower() if service_tier else STANDARD
        if tier in STANDARD_NAMES:
            tier = STANDARD
        elif tier not in period.rates:
            # A tier we have no rates for (e.g. the Interactions API's discounted "deferred")
            # is not priced as standard: that would be a silent wrong number.
            return _unpriced(
                model, self.version, found, period, tier, f"service tier {tier!r}", usage
            )
        tokens, prompt_tokens, clamped = split_tokens(usage)
        rates = period.rates_for(tier, prompt_tokens)
        per_second = self.audio_tokens_per_second(live=found.live if live is None else live)
        if empty and not bills_audio_seconds(rates, usage):
            # Only audio seconds were measured and nothing here prices them by the minute.
            return _no_usage(model, self.version, found)
        priced = price_usage(rates, tokens, usage, per_second)
        if priced.missing:
            missing = ", ".join(priced.missing)
            return _unpriced(model, self.version, found, period, tier, missing, usage, clamped)
        spec_period = period.spec
        return Cost(
            _cost.PRICED,
            model,
            self.version,
            priced.femto,
            priced.details,
            found.id,
            spec_period.starts,
            spec_period.source,
            tier,
            None,
            clamped,
        )

    def audio_tokens_per_second(self, *, live: bool) -> Decimal:
        """Tokens per second of audio (the Live API's rate when ``live``): how a per-minute
        price turns audio tokens into minutes when a usage has no measured seconds."""
        spec = self._spec
        return spec.live_audio_tokens_per_second if live else spec.audio_tokens_per_second

    def entries(self) -> tuple[PricedModel, ...]:
        """Every model entry with its dated, resolved rates, in table order (for exporting the
        prices to other engines, e.g. ``otel-gemini collector-config ottl``)."""
        return self._models

    def __repr__(self) -> str:
        return f"PriceTable(version={self.version!r}, models={len(self._models)})"


def _has_audio_seconds(usage: Usage) -> bool:
    return bool(usage.audio_input_seconds or usage.audio_output_seconds)


def _unpriced(
    model: str,
    version: str,
    found: PricedModel,
    period: PricePeriod,
    tier: str,
    missing: str,
    usage: Usage,
    clamped: bool = False,
) -> Cost:
    """An ``unknown_model`` cost: ``found`` has no price for ``missing`` in ``period``.

    Its usage details are every bucket of ``usage``, the unpriced ones included: what was
    used is known even when what it cost is not."""
    return Cost(
        status=_cost.UNKNOWN_MODEL,
        model=model,
        prices_version=version,
        price_model=found.id,
        effective_from=period.spec.starts,
        source=period.spec.source,
        service_tier=tier,
        details=usage_buckets(usage),
        reason=f"{found.id} has no price for {missing}",
        clamped=clamped,
    )


def _no_usage(model: str, version: str, found: PricedModel | None) -> Cost:
    return Cost(
        status=_cost.NO_USAGE,
        model=model,
        prices_version=version,
        femto={},
        price_model=found.id if found else None,
    )


@lru_cache(maxsize=1)
def _default_table() -> PriceTable:
    data = resources.files("otel_gemini.pricing").joinpath("data").joinpath(_DEFAULT_DATA)
    text = data.read_text(encoding="utf-8")
    return PriceTable(read_table(text, f"otel_gemini/pricing/data/{_DEFAULT_DATA}"))
