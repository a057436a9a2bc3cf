"""``configure()``: the whole pipeline from the environment in one call. (Placeholder: issue 4.)"""

from __future__ import annotations

from typing import Any


class Telemetry:
    """Handle on the configured pipeline (placeholder)."""


def configure(**overrides: Any) -> Telemetry:
    """Set up tracing, instrumentation, pricing and export (placeholder)."""
    return Telemetry()
