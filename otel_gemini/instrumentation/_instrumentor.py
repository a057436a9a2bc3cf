"""GeminiInstrumentor (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)


class GeminiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments google-genai (placeholder)."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("google-genai >= 1.20.0",)

    def _instrument(self, **kwargs: Any) -> None:
        return None

    def _uninstrument(self, **kwargs: Any) -> None:
        return None
