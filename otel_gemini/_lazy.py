"""A package's public names loaded on first use (a module-level ``__getattr__``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, MutableMapping
from typing import Any

from otel_gemini._extras import require_extra


def lazy_exports(
    package: str,
    source: str,
    names: Collection[str],
    namespace: MutableMapping[str, Any],
    *,
    extra: str | None = None,
) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``package`` taking ``names`` from module ``source`` when first
    asked for, and keeping each in ``namespace`` (the package's globals) so later lookups
    skip it. With ``extra``, a missing optional dependency of that install extra is a
    one-line :class:`~otel_gemini._extras.MissingExtraError` rather than a bare import error."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if extra is not None:
            require_extra(extra, f"{package}.{name}")
        value = getattr(importlib.import_module(source), name)
        namespace[name] = value
        return value

    return __getattr__
