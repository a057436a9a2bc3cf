"""The exporter's settings: keyword arguments over environment variables, checked once.

Every error names the setting (keyword and variable) and never shows a key's value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict

from otel_gemini._langfuse_settings import (
    DEFAULT_BASE_URL,
    ENV_BASE_URL,
    ENV_HOST,
    ENV_PUBLIC_KEY,
    ENV_SECRET_KEY,
    LangfuseConfigError,
    resolve_langfuse,
)
from otel_gemini.export._retry import RetryPolicy

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_BASE_URL",
    "ENV_HOST",
    "ENV_PUBLIC_KEY",
    "ENV_SECRET_KEY",
    "ENV_SPOOL_DIR",
    "ENV_SPOOL_MAX_BYTES",
    "EXPORTER_OPTIONS",
    "ExporterOptions",
    "ExporterSettings",
    "LangfuseConfigError",
    "default_spool_dir",
    "parse_size",
    "resolve_settings",
]

ENV_SPOOL_DIR = "OTEL_GEMINI_SPOOL_DIR"
ENV_SPOOL_MAX_BYTES = "OTEL_GEMINI_SPOOL_MAX_BYTES"

DEFAULT_SPOOL_MAX_BYTES = 128 * 1024 * 1024
DEFAULT_MEMORY_MAX_BYTES = 16 * 1024 * 1024
MIN_SPOOL_MAX_BYTES = 64 * 1024
MAX_SEGMENT_BYTES = 4 * 1024 * 1024

_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def default_spool_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/otel-gemini/spool``, else ``~/.local/state/otel-gemini/spool``."""
    state_home = environ.get("XDG_STATE_HOME")
    base = Path(state_home) if state_home else Path.home() / ".local" / "state"
    return base / "otel-gemini" / "spool"


def parse_size(text: str) -> int | None:
    """``"134217728"``, ``"128MiB"``, ``"64k"`` ... as bytes (binary units); None if not a size."""
    match = _SIZE.match(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNITS[match.group(2)[:1].lower()]


class ExporterOptions(TypedDict, total=False):
    """The keyword options of :class:`LangfuseExporter` (and of ``configure()``, which
    passes them on); their defaults are :class:`ExporterSettings`'s."""

    base_url: str | None
    public_key: str | None
    secret_key: str | None
    spool_dir: str | os.PathLike[str] | None
    spool_max_bytes: int | str | None
    memory_max_bytes: int
    request_timeout: float
    retry: RetryPolicy | None
    batch_max_spans: int
    batch_max_bytes: int
    spool_slots: int
    persist_interval: float
    fsync: bool
    gzip_level: int


EXPORTER_OPTIONS: Final = frozenset(ExporterOptions.__annotations__)


@dataclass(frozen=True)
class ExporterSettings:
    """The exporter's resolved settings; the field defaults are the one home of its
    defaults (``LangfuseExporter``, ``configure()``, ``serve`` and the gateway use them)."""

    base_url: str
    public_key: str
    secret_key: str = field(repr=False)
    spool_dir: Path
    spool_max_bytes: int
    memory_max_bytes: int = DEFAULT_MEMORY_MAX_BYTES
    request_timeout: float = 10.0
    batch_max_spans: int = 1000
    batch_max_bytes: int = 2 * 1024 * 1024
    spool_slots: int = 16
    persist_interval: float = 0.1
    fsync: bool = False
    gzip_level: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def segment_bytes(self) -> int:
        # Small enough that dropping the oldest segment at the cap loses about 1/8 of it.
        return max(16 * 1024, min(MAX_SEGMENT_BYTES, self.spool_max_bytes // 8))

    @property
    def dead_letter_max_bytes(self) -> int:
        return max(1024 * 1024, self.spool_max_bytes // 8)


def _check_positive(value: float, keyword: str) -> None:
    if not value > 0:
        raise LangfuseConfigError(f"{keyword}= must be positive (got {value!r})")


# Options that are settings as they are (the others are resolved against the environment).
_TUNING: Final = (
    "memory_max_bytes",
    "request_timeout",
    "batch_max_spans",
    "batch_max_bytes",
    "spool_slots",
    "persist_interval",
    "fsync",
    "gzip_level",
)


def resolve_settings(
    *, environ: Mapping[str, str] | None = None, **options: Unpack[ExporterOptions]
) -> ExporterSettings:
    """Merges keyword options over ``environ`` (default ``os.environ``) and validates."""
    unknown = set(options) - EXPORTER_OPTIONS
    if unknown:
        raise TypeError(f"unexpected exporter option(s): {', '.join(sorted(unknown))}")
    env = os.environ if environ is None else environ
    # The Langfuse part is checked where every entry point checks it.
    langfuse = resolve_langfuse(
        base_url=options.get("base_url"),
        public_key=options.get("public_key"),
        secret_key=options.get("secret_key"),
        environ=env,
    )

    spool_dir = options.get("spool_dir")
    directory: Path
    if spool_dir is not None:
        directory = Path(spool_dir)
    elif env.get(ENV_SPOOL_DIR):
        directory = Path(env[ENV_SPOOL_DIR])
    else:
        directory = default_spool_dir(env)

    spool_max_bytes = options.get("spool_max_bytes")
    cap_name = "spool_max_bytes=" if spool_max_bytes is not None else ENV_SPOOL_MAX_BYTES
    raw_cap = spool_max_bytes if spool_max_bytes is not None else env.get(ENV_SPOOL_MAX_BYTES)
    if raw_cap is None or raw_cap == "":
        cap = DEFAULT_SPOOL_MAX_BYTES
    else:
        parsed = raw_cap if isinstance(raw_cap, int) else parse_size(str(raw_cap))
        if parsed is None or parsed < MIN_SPOOL_MAX_BYTES:
            raise LangfuseConfigError(
                f"{cap_name} must be a size in bytes of at least {MIN_SPOOL_MAX_BYTES} "
                f"such as 134217728 or 128MiB (got {raw_cap!r})"
            )
        cap = parsed

    tuning: dict[str, Any] = {name: options[name] for name in _TUNING if name in options}
    settings = ExporterSettings(
        base_url=langfuse.base_url,
        public_key=langfuse.public_key,
        secret_key=langfuse.secret_key,
        spool_dir=directory,
        spool_max_bytes=cap,
        retry=options.get("retry") or RetryPolicy(),
        **tuning,
    )
    _check_positive(settings.memory_max_bytes, "memory_max_bytes")
    _check_positive(settings.request_timeout, "request_timeout")
    _check_positive(settings.batch_max_spans, "batch_max_spans")
    _check_positive(settings.batch_max_bytes, "batch_max_bytes")
    _check_positive(settings.spool_slots, "spool_slots")
    _check_positive(settings.persist_interval, "persist_interval")
    if settings.persist_interval > 0.5:
        # Spans that ended a second before a crash must be on disk.
        raise LangfuseConfigError(
            f"persist_interval= must be at most 0.5 s (got {settings.persist_interval!r})"
        )
    if not 0 <= settings.gzip_level <= 9:
        raise LangfuseConfigError(f"gzip_level= must be 0..9 (got {settings.gzip_level!r})")
    return replace(
        settings, batch_max_bytes=min(settings.batch_max_bytes, max(16 * 1024, cap // 8))
    )
