"""Settings of the instrumentation, from keyword arguments and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
CONTENT_MAX_LENGTH_ENV = "OTEL_GEMINI_CONTENT_MAX_LENGTH"
DEFAULT_CONTENT_MAX_LENGTH = 16_384

_TRUE = {"true", "1", "yes", "on", "span_only", "span_and_event"}
_FALSE = {"false", "0", "no", "off", "", "no_content", "event_only"}


@dataclass(frozen=True)
class InstrumentationSettings:
    """What the instrumentation records beyond metadata and usage."""

    capture_content: bool = False
    content_max_length: int = DEFAULT_CONTENT_MAX_LENGTH

    @classmethod
    def resolve(
        cls,
        capture_content: bool | None = None,
        content_max_length: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> InstrumentationSettings:
        """Keyword arguments win over the environment; invalid values raise ``ValueError``."""
        env = os.environ if environ is None else environ
        if capture_content is None:
            raw = env.get(CAPTURE_CONTENT_ENV, "").strip().lower()
            if raw in _TRUE:
                capture_content = True
            elif raw in _FALSE:
                capture_content = False
            else:
                raise ValueError(f"{CAPTURE_CONTENT_ENV}={raw!r} is not valid: use true or false")
        if content_max_length is None:
            raw_length = env.get(CONTENT_MAX_LENGTH_ENV, "").strip()
            try:
                content_max_length = int(raw_length) if raw_length else DEFAULT_CONTENT_MAX_LENGTH
            except ValueError:
                raise ValueError(
                    f"{CONTENT_MAX_LENGTH_ENV}={raw_length!r} is not an integer"
                ) from None
        if content_max_length < 64:
            raise ValueError(
                f"content_max_length ({CONTENT_MAX_LENGTH_ENV}) must be at least 64,"
                f" got {content_max_length}"
            )
        return cls(capture_content=capture_content, content_max_length=content_max_length)
