"""configure() with a test's own tracer provider and cost store; everything made is shut down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from otel_gemini import Telemetry, configure


def telemetry_maker(tmp_path: Path, **defaults: Any) -> Iterator[Callable[..., Telemetry]]:
    """For a fixture to ``yield from``: a ``make(**options)`` calling configure() with this
    test's provider and cost store, then ``defaults``, then ``options``."""
    provider = TracerProvider()
    made: list[Telemetry] = []

    def make(**options: Any) -> Telemetry:
        settings = {
            "tracer_provider": provider,
            "cost_store": tmp_path / "costs.sqlite3",
            **defaults,
            **options,
        }
        telemetry = configure(**settings)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown()
    provider.shutdown()
