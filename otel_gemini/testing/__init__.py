"""Fakes of Gemini and Langfuse servers for tests, ours and users'."""

from otel_gemini.testing import fake_gemini
from otel_gemini.testing.fake_gemini import *  # noqa: F403 (the names in its __all__)
from otel_gemini.testing.fake_langfuse import (
    FakeLangfuse,
    MappedObservation,
    MappedTrace,
    ReceivedRequest,
    ReceivedSpan,
)

__all__ = ["FakeLangfuse", "MappedObservation", "MappedTrace", "ReceivedRequest", "ReceivedSpan"]
__all__ += fake_gemini.__all__
