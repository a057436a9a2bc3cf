"""Price-table files (TOML): parse, validate and merge an override over the defaults.

A file is checked completely before anything uses it: every problem is reported with the
file, the entry and the key, so a wrong table never starts silently.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TOKEN_PRICE_KINDS: Final = (
    "input",
    "input_image",
    "input_video",
    "input_audio",
    "cache_read",
    "cache_read_audio",
    "output",
    "output_reasoning",
    "output_image",
    "output_audio",
)
"""USD per 1M tokens."""
UNIT_PRICE_KINDS: Final = (
    "per_image",
    "per_video_second",
    "input_audio_per_minute",
    "output_audio_per_minute",
)
"""USD per generated image, per second of generated video, per minute of audio."""
INFO_PRICE_KINDS: Final = ("cache_storage",)
"""USD per 1M tokens per hour of context-cache storage: shown, not billed per request."""
PRICE_KINDS: Final = TOKEN_PRICE_KINDS + UNIT_PRICE_KINDS + INFO_PRICE_KINDS

# Decimal places a price may have, so amounts stay whole numbers of 1e-15 USD.
_MAX_PLACES: Final = {
    **dict.fromkeys(TOKEN_PRICE_KINDS + INFO_PRICE_KINDS, 9),
    "per_image": 15,
    "per_video_second": 12,
    "input_audio_per_minute": 15,
    "output_audio_per_minute": 15,
}

_TOP_KEYS: Final = ("format", "version", "audio", "service_tiers", "models")
_AUDIO_KEYS: Final = ("tokens_per_second", "live_tokens_per_second")
_MODEL_KEYS: Final = ("id", "names", "prefixes", "patterns", "live", "note", "prices")
_PERIOD_KEYS: Final = ("from", "source", "note", "tiers", "service_tiers", *PRICE_KINDS)
_TIER_KEYS: Final = ("above", *TOKEN_PRICE_KINDS)
_RULE_KEYS: Final = ("multiplier", "except", "prices")
SUPPORTED_FORMAT: Final = 1


class PriceTableError(ValueError):
    """A price-table file is unusable; ``problems`` lists each problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "invalid price table" if count == 1 else f"invalid price table ({count} problems)"
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class ServiceTierRule:
    """How a service tier (batch, flex, priority…) changes a period's prices."""

    multiplier: Decimal = Decimal(1)
    unchanged: frozenset[str] = frozenset()
    """Price kinds the multiplier leaves alone (the file's ``except``)."""
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    """Explicit prices for this tier, applied after the multiplier."""


@dataclass(frozen=True)
class PromptTier:
    """Prices that replace the base ones when the prompt has more than ``above`` tokens."""

    above: int
    prices: Mapping[str, Decimal]


@dataclass(frozen=True)
class PeriodSpec:
    """A model's prices from a date on."""

    starts: date | None
    source: str | None
    note: str | None
    prices: Mapping[str, Decimal]
    tiers: tuple[PromptTier, ...] | None
    """``None`` in an override patch: keep the patched period's tiers."""
    service_tiers: Mapping[str, ServiceTierRule]
    where: str


@dataclass(frozen=True)
class ModelSpec:
    """A price-table entry: the names it prices and its dated price periods."""

    id: str
    names: tuple[str, ...]
    prefixes: tuple[str, ...]
    patterns: tuple[str, ...]
    live: bool | None
    note: str | None
    periods: tuple[PeriodSpec, ...]
    where: str


@dataclass(frozen=True)
class TableSpec:
    """A whole price table as read from its file(s)."""

    version: str
    audio_tokens_per_second: Decimal
    live_audio_tokens_per_second: Decimal
    service_tiers: Mapping[str, ServiceTierRule]
    models: tuple[ModelSpec, ...]
    files: tuple[str, ...]


class _Problems:
    """Collects every problem of one file before failing."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(
            f"{self.file}: {where}: {message}" if where else f"{self.file}: {message}"
        )


def _unknown_keys(
    table: Mapping[str, Any], allowed: Iterable[str], where: str, problems: _Problems
) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            problems.add(where, f"{key!r}: unknown key (expected one of: {', '.join(allowed)})")


def _price(value: Any, kind: str, where: str, problems: _Problems) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        problems.add(where, f"{kind!r}: a price must be a number, not {value!r}")
        return None
    price = Decimal(value)
    if not price.is_finite() or price < 0:
        problems.add(where, f"{kind!r}: a price must be a finite number >= 0, not {value}")
        return None
    places = _MAX_PLACES.get(kind, 15)
    exponent = price.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        problems.add(where, f"{kind!r}: at most {places} decimal places, not {value}")
        return None
    return price


def _prices(
    table: Mapping[str, Any], kinds: Iterable[str], where: str, problems: _Problems
) -> dict[str, Decimal]:
    result: dict[str, Decimal] = {}
    for kind in kinds:
        if kind in table:
            price = _price(table[kind], kind, where, problems)
            if price is not None:
                result[kind] = price
    return result


def _strings(value: Any, key: str, where: str, problems: _Problems) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        problems.add(where, f"{key!r}: must be a list of non-empty strings")
        return ()
    return tuple(item.strip().lower() for item in value)


def _text(value: Any, key: str, where: str, problems: _Problems) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.add(where, f"{key!r}: must be a non-empty string")
        return None
    return value.strip()


def _positive_number(value: Any, key: str, where: str, problems: _Problems) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not value > 0:
        problems.add(where, f"{key!r}: must be a number > 0, not {value!r}")
        return None
    return Decimal(value)


def _rule(value: Any, where: str, problems: _Problems) -> ServiceTierRule | None:
    if not isinstance(value, dict):
        problems.add(where, "must be a table with 'multiplier', 'except' and/or 'prices'")
        return None
    _unknown_keys(value, _RULE_KEYS, where, problems)
    multiplier = Decimal(1)
    if "multiplier" in value:
        raw = value["multiplier"]
        if isinstance(raw, bool) or not isinstance(raw, (int, Decimal)) or raw < 0:
            problems.add(where, f"'multiplier': must be a number >= 0, not {raw!r}")
        else:
            multiplier = Decimal(raw)
    unchanged: frozenset[str] = frozenset()
    if "except" in value:
        kinds = _strings(value["except"], "except", where, problems)
        for kind in kinds:
            if kind not in PRICE_KINDS:
                problems.add(where, f"'except': {kind!r} is not a price kind")
        unchanged = frozenset(kinds)
    prices: dict[str, Decimal] = {}
    if "prices" in value:
        if isinstance(value["prices"], dict):
            _unknown_keys(value["prices"], PRICE_KINDS, f"{where}.prices", problems)
            prices = _prices(value["prices"], PRICE_KINDS, f"{where}.prices", problems)
        else:
            problems.add(where, "'prices': must be a table of prices")
    return ServiceTierRule(multiplier, unchanged, prices)


def _rules(value: Any, where: str, problems: _Problems) -> dict[str, ServiceTierRule]:
    if not isinstance(value, dict):
        problems.add(where, "'service_tiers': must be a table of service tiers")
        return {}
    result: dict[str, ServiceTierRule] = {}
    for name, raw in value.items():
        tier = name.strip().lower()
        if tier == "standard":
            problems.add(where, "'service_tiers': 'standard' is the base price and takes no rule")
            continue
        rule = _rule(raw, f"{where}.service_tiers.{name}", problems)
        if rule is not None:
            result[tier] = rule
    return result


def _start(value: Any, where: str, problems: _Problems) -> date | None:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    problems.add(where, f"'from': must be a date like 2025-06-17, not {value!r}")
    return None


def _tiers(value: Any, where: str, problems: _Problems) -> tuple[PromptTier, ...]:
    if not isinstance(value, list):
        problems.add(where, "'tiers': must be a list of tables")
        return ()
    tiers: list[PromptTier] = []
    for index, raw in enumerate(value):
        tier_where = f"{where}.tiers[{index}]"
        if not isinstance(raw, dict):
            problems.add(tier_where, "must be a table like { above = 200000, input = 2.5 }")
            continue
        _unknown_keys(raw, _TIER_KEYS, tier_where, problems)
        above = raw.get("above")
        if isinstance(above, bool) or not isinstance(above, int) or above <= 0:
            problems.add(
                tier_where, f"'above': must be a whole number of tokens > 0, not {above!r}"
            )
            continue
        if tiers and above <= tiers[-1].above:
            problems.add(tier_where, "'above': tiers must be listed by increasing 'above'")
            continue
        tiers.append(PromptTier(above, _prices(raw, TOKEN_PRICE_KINDS, tier_where, problems)))
    return tuple(tiers)


def _period(raw: Any, where: str, problems: _Problems, *, is_patch: bool) -> PeriodSpec | None:
    if not isinstance(raw, dict):
        problems.add(where, "must be a table of prices")
        return None
    _unknown_keys(raw, _PERIOD_KEYS, where, problems)
    starts = _start(raw["from"], where, problems) if "from" in raw else None
    source = _text(raw["source"], "source", where, problems) if "source" in raw else None
    note = _text(raw["note"], "note", where, problems) if "note" in raw else None
    tiers = _tiers(raw["tiers"], where, problems) if "tiers" in raw else (None if is_patch else ())
    rules = _rules(raw["service_tiers"], where, problems) if "service_tiers" in raw else {}
    prices = _prices(raw, PRICE_KINDS, where, problems)
    if not is_patch and not any(kind in raw for kind in PRICE_KINDS):
        problems.add(where, "a price period needs at least one price")
    return PeriodSpec(starts, source, note, prices, tiers, rules, where)


def _model(
    raw: Any, index: int, problems: _Problems, patch_ids: frozenset[str]
) -> ModelSpec | None:
    where = f"models[{index}]"
    if not isinstance(raw, dict):
        problems.add(where, "must be a table")
        return None
    model_id = raw.get("id")
    if not isinstance(model_id, str) or not model_id.strip():
        problems.add(where, "'id': every model needs a non-empty string id")
        return None
    model_id = model_id.strip().lower()
    where = f'models[{index}] (id "{model_id}")'
    _unknown_keys(raw, _MODEL_KEYS, where, problems)
    is_patch = model_id in patch_ids
    names = _strings(raw["names"], "names", where, problems) if "names" in raw else ()
    prefixes = _strings(raw["prefixes"], "prefixes", where, problems) if "prefixes" in raw else ()
    patterns = _strings(raw["patterns"], "patterns", where, problems) if "patterns" in raw else ()
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            problems.add(
                where, f"'patterns': {pattern!r} is not a valid regular expression: {error}"
            )
    live = raw.get("live")
    if live is not None and not isinstance(live, bool):
        problems.add(where, f"'live': must be true or false, not {live!r}")
        live = None
    note = _text(raw["note"], "note", where, problems) if "note" in raw else None
    raw_periods = raw.get("prices", [])
    if not isinstance(raw_periods, list):
        problems.add(where, "'prices': must be an array of tables ([[models.prices]])")
        raw_periods = []
    periods = [
        _period(item, f"{where} prices[{number}]", problems, is_patch=is_patch)
        for number, item in enumerate(raw_periods)
    ]
    if not is_patch and not periods:
        problems.add(where, "'prices': a model needs at least one [[models.prices]] period")
    if not is_patch and not (names or prefixes or patterns):
        names = (model_id,)
    return ModelSpec(
        id=model_id,
        names=names,
        prefixes=prefixes,
        patterns=patterns,
        live=live,
        note=note,
        periods=tuple(period for period in periods if period is not None),
        where=where,
    )


def _check_model(model: ModelSpec, problems: _Problems) -> None:
    seen: dict[date | None, str] = {}
    for period in model.periods:
        if period.starts in seen:
            when = "no 'from' date" if period.starts is None else f"'from' = {period.starts}"
            problems.add(
                period.where,
                f"overlapping dates: {seen[period.starts]} has the same {when}"
                " (one period per start date)",
            )
        else:
            seen[period.starts] = period.where


def _check_names(models: Iterable[ModelSpec], problems: _Problems) -> None:
    owners: dict[tuple[str, str], str] = {}
    for model in models:
        for kind, values in (("name", model.names), ("prefix", model.prefixes)):
            for value in values:
                owner = owners.setdefault((kind, value), model.id)
                if owner != model.id:
                    problems.add(
                        model.where,
                        f"{kind} {value!r} is already priced by model {owner!r}"
                        " (a name may belong to one model only)",
                    )


def _check_patterns(models: Iterable[ModelSpec], problems: _Problems) -> None:
    # Exact names must price as their own model, not be captured by another model's regex.
    entries = list(models)
    for model in entries:
        for pattern in model.patterns:
            try:
                compiled = re.compile(pattern)
            except re.error:
                continue  # already reported
            for other in entries:
                if other.id == model.id:
                    continue
                for name in other.names:
                    if compiled.search(name):
                        problems.add(
                            model.where,
                            f"pattern {pattern!r} also matches {name!r}, a name of {other.id!r}",
                        )


def read_table(text: str, file: str, *, base: TableSpec | None = None) -> TableSpec:
    """Parse and validate one file; with ``base``, the file is an override merged over it."""
    problems = _Problems(file)
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as error:
        raise PriceTableError([f"{file}: not valid TOML: {error}"]) from None
    _unknown_keys(raw, _TOP_KEYS, "", problems)
    file_format = raw.get("format", SUPPORTED_FORMAT)
    if file_format != SUPPORTED_FORMAT:
        problems.add(
            "", f"'format': this otel-gemini reads format {SUPPORTED_FORMAT}, not {file_format!r}"
        )

    version = raw.get("version")
    if version is not None and (not isinstance(version, str) or not version.strip()):
        problems.add("", f"'version': must be a non-empty string, not {version!r}")
        version = None
    if base is None and version is None:
        problems.add("", "'version': the base price table needs a version")

    rate = base.audio_tokens_per_second if base else None
    live_rate = base.live_audio_tokens_per_second if base else None
    audio = raw.get("audio", {})
    if isinstance(audio, dict):
        _unknown_keys(audio, _AUDIO_KEYS, "audio", problems)
        if "tokens_per_second" in audio:
            rate = _positive_number(
                audio["tokens_per_second"], "tokens_per_second", "audio", problems
            )
        if "live_tokens_per_second" in audio:
            live_rate = _positive_number(
                audio["live_tokens_per_second"], "live_tokens_per_second", "audio", problems
            )
    else:
        problems.add("", "'audio': must be a table")
    if base is None and (rate is None or live_rate is None):
        problems.add("audio", "the base table needs tokens_per_second and live_tokens_per_second")

    rules = dict(base.service_tiers) if base else {}
    if "service_tiers" in raw:
        rules.update(_rules(raw["service_tiers"], "", problems))

    raw_models = raw.get("models", [])
    if not isinstance(raw_models, list):
        problems.add("", "'models': must be an array of tables ([[models]])")
        raw_models = []
    base_models = {model.id: model for model in base.models} if base else {}
    patch_ids = frozenset(base_models)
    models: list[ModelSpec] = []
    seen_ids: set[str] = set()
    for index, raw_model in enumerate(raw_models):
        model = _model(raw_model, index, problems, patch_ids)
        if model is None:
            continue
        if model.id in seen_ids:
            problems.add(model.where, f"model id {model.id!r} appears twice in this file")
            continue
        seen_ids.add(model.id)
        models.append(model)
    for model in models:
        _check_model(model, problems)

    merged = [
        _patched(base_models[model.id], model, file) if model.id in base_models else model
        for model in models
    ]
    merged_ids = {model.id for model in merged}
    final = [model for model in base.models if model.id not in merged_ids] if base else []
    final.extend(merged)
    _check_names(final, problems)
    _check_patterns(final, problems)
    if problems.items:
        raise PriceTableError(problems.items)

    assert rate is not None and live_rate is not None
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    own_version = version.strip() if isinstance(version, str) else digest
    return TableSpec(
        version=f"{base.version}+{own_version}" if base else own_version,
        audio_tokens_per_second=rate,
        live_audio_tokens_per_second=live_rate,
        service_tiers=rules,
        models=tuple(final),
        files=(*base.files, file) if base else (file,),
    )


def _apply(period: PeriodSpec, patch: PeriodSpec, starts: date | None, file: str) -> PeriodSpec:
    rules = dict(period.service_tiers)
    rules.update(patch.service_tiers)
    return PeriodSpec(
        starts=starts,
        source=patch.source or file,
        note=patch.note or period.note,
        prices={**period.prices, **patch.prices},
        tiers=patch.tiers if patch.tiers is not None else period.tiers,
        service_tiers=rules,
        where=patch.where,
    )


def _patched(model: ModelSpec, override: ModelSpec, file: str) -> ModelSpec:
    """``model`` with an override entry's names added and its price patches applied.

    A patch without ``from`` changes every period; with ``from`` it changes the periods in
    effect on and after that date (splitting the one running on that date).
    """
    periods = sorted(model.periods, key=lambda period: period.starts or date.min)
    for patch in sorted(override.periods, key=lambda period: period.starts or date.min):
        if patch.starts is None:
            periods = [_apply(period, patch, period.starts, file) for period in periods]
            continue
        updated: list[PeriodSpec] = []
        for position, period in enumerate(periods):
            following = periods[position + 1].starts if position + 1 < len(periods) else None
            begins = period.starts or date.min
            if begins >= patch.starts:
                updated.append(_apply(period, patch, period.starts, file))
            elif following is None or following > patch.starts:
                updated.append(period)
                updated.append(_apply(period, patch, patch.starts, file))
            else:
                updated.append(period)
        periods = updated
    return replace(
        model,
        names=model.names + tuple(name for name in override.names if name not in model.names),
        prefixes=model.prefixes + tuple(p for p in override.prefixes if p not in model.prefixes),
        patterns=model.patterns + tuple(p for p in override.patterns if p not in model.patterns),
        live=override.live if override.live is not None else model.live,
        note=override.note or model.note,
        periods=tuple(periods),
    )


def read_table_file(path: str | Path, *, base: TableSpec | None = None) -> TableSpec:
    """Read ``path``; a missing or unreadable file is a :class:`PriceTableError` too."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PriceTableError([f"{file}: cannot read the file: {error}"]) from None
    return read_table(text, file, base=base)
