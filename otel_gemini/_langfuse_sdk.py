"""Beside the Langfuse Python SDK: each span reaches Langfuse once, priced, through our spool.

``Langfuse()`` / ``get_client()`` puts a ``LangfuseSpanProcessor`` (a ``BatchSpanProcessor``
to Langfuse's OTLP endpoint: no retry on 500, no disk) on the global tracer provider. It
exports the SDK's own spans and every span with ``gen_ai.*`` attributes (3.x: every span),
ours included, at ``on_end``, before the cost processor has handed on its priced copy. Our
exporter delivers every span of the provider already, the SDK's ``@observe`` spans too. So
Langfuse got each span twice, one generation copy with our cost and one without.

The path kept is ours (durable, priced). While a pipeline exporting to Langfuse runs on the
provider, the SDK's processor for the same project exports nothing; its ``on_start`` work
stays (``propagate_attributes()`` values and, in 4.x/5.x, the app-root mark, stamped on the
span itself, so our copy carries them). The SDK has no public switch on a running processor,
so per version:

- 4.x, 5.x: its span filter ``_should_export_span`` (what ``Langfuse(should_export_span=...)``
  sets) is wrapped. A finished span (``on_end``) gets "no"; an open one (5.x asks at
  ``on_start`` whether the span will be exported, to mark the app root) gets the user's
  filter's answer, so the SDK marks what it would mark alone. Its ``on_end`` still runs, and
  with it the per-span bookkeeping it cleans up there.
- 3.x (no filter): the instance's ``on_end`` is wrapped (it keeps no per-span state).

The SDK's processor may come after ``configure()`` (a lazy ``get_client()``): the pipeline's
slot calls :meth:`LangfuseSdkGuard.check` on every span start and end, which costs an
identity check of the provider's processor tuple until that tuple changes. A processor for
another project (another public key) is left alone: those spans go to both projects.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from otel_gemini._background import renew_locks_after_fork

_logger = logging.getLogger("otel_gemini")

# Set on an SDK processor once guarded (the guard survives reconfiguring: it reads the slot).
_GUARDED = "_otel_gemini_guard"


def is_langfuse_sdk_processor(processor: object) -> bool:
    """Whether ``processor`` is the Langfuse SDK's span processor (any version), without
    importing the SDK."""
    return any(
        cls.__name__ == "LangfuseSpanProcessor" and cls.__module__.startswith("langfuse.")
        for cls in type(processor).__mro__
    )


def _sdk_version() -> str:
    try:
        from importlib.metadata import version

        return version("langfuse")
    except Exception:  # not installed as a distribution: only the name matters
        return "unknown"


def _masks_spans(processor: object) -> bool:
    """Whether the processor's exporter applies ``Langfuse(mask_otel_spans=...)`` (5.x)."""
    exporter = getattr(processor, "span_exporter", None)
    return getattr(exporter, "_mask_otel_spans", None) is not None


class LangfuseSdkGuard:
    """Keeps the Langfuse SDK's span processors on one provider from exporting what our
    pipeline delivers (see the module docstring). Thread-safe; one per provider."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = weakref.ref(provider)
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")  # checked on every span start and end
        self._seen: object = None  # the provider's processor tuple last scanned
        self._extra: Callable[[], Iterable[SpanProcessor]] = tuple
        self._guarded: list[weakref.ReferenceType[SpanProcessor]] = []
        self.public_key: str | None = None
        """The project our pipeline exports to; ``None`` while it does not export."""

    def attach(self, public_key: str | None, extra: Callable[[], Iterable[SpanProcessor]]) -> None:
        """A pipeline starts (``public_key``: its Langfuse project, ``None``: no export);
        ``extra`` lists processors it took off the provider (they get spans through it)."""
        self.public_key = public_key
        self._extra = extra
        known = self._processors()  # guarded under an earlier pipeline: described here
        with self._lock:
            self._seen = None
        self.check()  # describes the ones it finds
        for processor in known:
            self._describe(processor)

    def detach(self) -> None:
        """The pipeline stopped: the SDK's processors export as they would alone."""
        self.public_key = None

    def delivers(self, processor: object) -> bool:
        """Whether our pipeline delivers the spans ``processor`` would export."""
        key = self.public_key
        return key is not None and key == getattr(processor, "public_key", None)

    def check(self) -> None:
        """Guards SDK processors added since the last call (cheap when none were)."""
        provider = self._provider()
        active = getattr(provider, "_active_span_processor", None)
        current = getattr(active, "_span_processors", None)
        if current is self._seen:
            return
        with self._lock:
            if current is self._seen:
                return
            self._seen = current
            found = [p for p in (*(current or ()), *self._extra()) if self._guard(p)]
        for processor in found:
            self._describe(processor)

    # --- inside the lock -----------------------------------------------------------------

    def _guard(self, processor: object) -> bool:
        """Wraps a new SDK processor's export decision; True when it was new."""
        if not is_langfuse_sdk_processor(processor) or getattr(processor, _GUARDED, None):
            return False
        original = getattr(processor, "_should_export_span", None)
        if callable(original):
            processor._should_export_span = _Filter(self, processor, original)  # type: ignore[attr-defined]
        else:
            processor.on_end = _OnEnd(self, processor, processor.on_end)  # type: ignore[attr-defined]
        setattr(processor, _GUARDED, self)
        self._guarded.append(weakref.ref(processor))  # type: ignore[arg-type]
        return True

    def _processors(self) -> list[SpanProcessor]:
        with self._lock:
            alive = [p for ref in self._guarded if (p := ref()) is not None]
        return alive

    def _describe(self, processor: SpanProcessor) -> None:
        # Never the public key itself (it identifies the project; see _langfuse_settings).
        key = key_fingerprint(getattr(processor, "public_key", None))
        if self.public_key is None:
            _logger.debug("otel-gemini: found the Langfuse SDK's span processor (%s)", key)
            return
        if not self.delivers(processor):
            _logger.info(
                "otel-gemini: the Langfuse SDK's span processor exports to project %s and "
                "otel-gemini to %s: each exports its spans to its own project (the SDK's "
                "copies of Gemini generations carry no otel-gemini cost)",
                key,
                key_fingerprint(self.public_key),
            )
            return
        _logger.info(
            "otel-gemini: beside the Langfuse SDK (langfuse %s, project %s) on this tracer "
            "provider: otel-gemini's spool exports every span to Langfuse once (the SDK's "
            "@observe spans included, Gemini generations priced); the SDK's span processor "
            "exports none while this pipeline runs and still applies propagate_attributes()",
            _sdk_version(),
            key,
        )
        if _masks_spans(processor):
            _logger.warning(
                "otel-gemini: Langfuse(mask_otel_spans=...) masks only what the SDK's own "
                "span processor exports; the spans otel-gemini exports are not masked by it. "
                "Mask at the source (Langfuse(mask=...), content capture off) instead; see "
                "docs/langfuse.md"
            )


def key_fingerprint(key: object) -> str:
    """What a message shows of a Langfuse public key: ``pk-…`` and its last 4 characters
    (enough to tell two projects apart; the key itself is never logged)."""
    if not isinstance(key, str) or not key:
        return "(no key)"
    if len(key) < 12:
        return "pk-…"
    return f"pk-…{key[-4:]}"


class _Filter:
    """The SDK processor's span filter, answering "no" for finished spans we deliver."""

    def __init__(
        self, guard: LangfuseSdkGuard, processor: object, original: Callable[[ReadableSpan], Any]
    ) -> None:
        self._guard = guard
        self._processor = weakref.ref(processor)
        self.original = original

    def __call__(self, span: ReadableSpan) -> Any:
        # An open span is the start-time question ("will it be exported?"): it will, by us
        # or by the SDK, so the user's filter answers as it would alone.
        if span.end_time is not None and self._guard.delivers(self._processor()):
            return False
        return self.original(span)


class _OnEnd:
    """The SDK processor's ``on_end`` (3.x), skipped for spans we deliver."""

    def __init__(
        self, guard: LangfuseSdkGuard, processor: object, original: Callable[[ReadableSpan], None]
    ) -> None:
        self._guard = guard
        self._processor = weakref.ref(processor)
        self.original = original

    def __call__(self, span: ReadableSpan) -> None:
        if not self._guard.delivers(self._processor()):
            self.original(span)
