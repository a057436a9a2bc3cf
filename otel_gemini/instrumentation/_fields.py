"""Reading the SDK's request and response objects, which callers may also give as dicts."""

from __future__ import annotations

from typing import Any


def field(value: Any, name: str) -> Any:
    """``value.name`` of an SDK (pydantic) object, or ``value[name]`` of its dict form; None
    when absent (or when ``value`` is None)."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)
