"""``GeminiInstrumentor``: patches google-genai so each billed request becomes a span."""

from __future__ import annotations

import logging
from collections.abc import Collection
from importlib import metadata
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from otel_gemini.instrumentation._batches import instrument_batches
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._interactions import instrument_interactions
from otel_gemini.instrumentation._live import instrument_live, uninstrument_live
from otel_gemini.instrumentation._operations import (
    OPERATIONS,
    CallWrappers,
    ToolWrappers,
    is_async,
)
from otel_gemini.instrumentation._settings import InstrumentationSettings

_logger = logging.getLogger("otel_gemini.instrumentation")

# The range our tests cover. Newer versions are still instrumented, with one warning:
# a silent no-op on an upgrade is the failure we exist to avoid.
SUPPORTED_MIN = "1.20.0"
TESTED_MAX = (3, 6)

_TOOLS_MODULE = "google.genai._extra_utils"
_TOOL_FUNCTIONS = ("invoke_function_from_dict_args", "invoke_function_from_dict_args_async")


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


class GeminiInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """OpenTelemetry instrumentor for Google's ``google-genai`` SDK.

    Every billed HTTP request (``generateContent``, each hop of automatic function calling
    and of automatic continuation, streams, embeddings, images, videos, and
    ``interactions.create``) becomes a CLIENT span with GenAI semantic-convention attributes,
    plus the GenAI client metrics. A Live API session (``client.aio.live.connect``) becomes a
    session span with a generation span per model turn (see ``docs/live.md``)::

        GeminiInstrumentor().instrument(tracer_provider=provider, capture_content=False)

    Keyword arguments of :meth:`instrument`: ``tracer_provider``, ``meter_provider``,
    ``capture_content`` (default from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``),
    ``content_max_length`` (default from ``OTEL_GEMINI_CONTENT_MAX_LENGTH``, 16384).
    Also registered as an ``opentelemetry_instrumentor`` entry point for
    ``opentelemetry-instrument``.
    """

    # BaseInstrumentor is a singleton whose __init__ runs on every GeminiInstrumentor() call,
    # so the patch list is set in _instrument, never in __init__.
    _patched: list[tuple[Any, str]]

    def instrumentation_dependencies(self) -> Collection[str]:
        return (f"google-genai >= {SUPPORTED_MIN}",)

    def _instrument(self, **kwargs: Any) -> None:
        # configure() hands over the settings it resolved; a direct call resolves them here.
        settings = kwargs.get("settings") or InstrumentationSettings.resolve(
            capture_content=kwargs.get("capture_content"),
            content_max_length=kwargs.get("content_max_length"),
        )
        instruments = Instruments.create(
            settings, kwargs.get("tracer_provider"), kwargs.get("meter_provider")
        )
        self._warn_if_untested()

        from google.genai import _extra_utils, chats, models

        owners = {
            "models": (models, (models.Models, models.AsyncModels)),
            "chats": (chats, (chats.Chat, chats.AsyncChat)),
        }
        # A stale list would make uninstrument() skip what this call patches.
        self._patched = []
        for operation in OPERATIONS:
            module, classes = owners[operation.owner]
            for cls in classes:
                method = cls.__dict__.get(operation.method)
                if method is None:  # not in this SDK version
                    continue
                wrappers = CallWrappers(operation, instruments)
                wrapper = wrappers.async_ if is_async(method) else wrappers.sync
                wrap_function_wrapper(
                    module.__name__, f"{cls.__name__}.{operation.method}", wrapper
                )
                self._patched.append((cls, operation.method))
        tools = ToolWrappers(instruments)
        for name in _TOOL_FUNCTIONS:
            function = getattr(_extra_utils, name, None)
            if function is None:
                continue
            wrapper = tools.async_ if is_async(function) else tools.sync
            wrap_function_wrapper(_TOOLS_MODULE, name, wrapper)
            self._patched.append((_extra_utils, name))
        # Interactions API (client.interactions.create): a span per request, as above.
        self._patched.extend(instrument_interactions(instruments))
        self._patched.extend(instrument_batches(instruments))
        # Live API (client.aio.live.connect): a session span, a generation span per turn.
        self._patched.extend(instrument_live(instruments))

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, name in getattr(self, "_patched", []):
            unwrap(owner, name)
        self._patched = []
        uninstrument_live()

    @staticmethod
    def _warn_if_untested() -> None:
        try:
            version = metadata.version("google-genai")
        except metadata.PackageNotFoundError:
            return
        if _version_tuple(version) > TESTED_MAX:
            _logger.warning(
                "google-genai %s is newer than otel-gemini has been tested with (up to %d.%d.x);"
                " instrumenting it anyway. Please report anything missing.",
                version,
                *TESTED_MAX,
            )
