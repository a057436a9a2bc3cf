"""One billed request, one price: which spans with usage are *covered* by another.

Several spans can describe the same Gemini request: a framework's model-call span over ours
(ADK, pydantic-ai), or another google-genai instrumentation beside ours (the official OTel
one wraps the public ``Models.generate_content``, ours the per-request layer below it, so its
span is our span's parent). Pricing each would bill the request twice. The rule: the span
closest to the wire is priced; a span with usage that has a descendant with usage (in this
process, same trace) is *covered*: it keeps its usage, gets no cost, and nothing counts it.
Where the two are not nested (a span in another trace), the same ``gen_ai.response.id`` from
a different instrumentation scope links them: the first to end is priced, the later covered.
A framework known to put its model-call span in a trace of its own, with no response id
(LangSmith in OTel mode: ``SEPARATE_TRACE_FRAMEWORKS``), is covered by scope: its Gemini
spans with usage are never priced once our instrumentation has started a span in this
process (it prices the same requests below the framework), with a warning logged once.

The bookkeeping, bounded in memory and time:

- every span started here has an entry (its parent, how many of its children still have
  entries, whether it ended, whether a descendant with usage covers it); an entry goes when
  the span and all its descendants have ended, and the oldest are forgotten past
  ``max_spans`` (a span that never ends must not grow the map forever);
- a span with usage that ends while descendants are still open (a stream the caller reads
  after the framework's call returned) is *held* back from downstream until they end, when
  the decision is made; at most ``max_held`` are held, each for at most ``hold_seconds``,
  after which it is priced as before (counted in ``held_expired``);
- response ids seen on priced spans, the last ``max_response_ids``.

Spans this process did not see start (the gateway's, which arrive finished over OTLP) are
priced as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Final, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan, Span

from otel_gemini import _attributes as attrs
from otel_gemini._background import fork_hooks, renew_locks_after_fork
from otel_gemini._limits import MAX_NAME_CHARS, cut

_logger = logging.getLogger("otel_gemini.processing")

MAX_SPANS: Final = 100_000
MAX_HELD: Final = 1_000
HOLD_SECONDS: Final = 120.0
MAX_RESPONSE_IDS: Final = 10_000
# Ancestors walked up from a span with usage; deeper nesting is not covered (priced as before).
MAX_DEPTH: Final = 64
# Our instrumentation's scope (otel_gemini.instrumentation._instruments.SCOPE). Its spans are the
# ones closest to the wire: never held back, even when the app's HTTP client span below one
# outlives it (an abandoned stream's response closes later).
OUR_SCOPE: Final = "otel_gemini.instrumentation"


class OtherInstrumentation(NamedTuple):
    """A google-genai instrumentation whose spans duplicate ours, and how to turn it off."""

    package: str
    entry_point: str


# The Langfuse Python SDK's tracer (langfuse._client.constants.LANGFUSE_TRACER_NAME): its
# generations may state usage over ours (a user's @observe(as_type="generation")).
LANGFUSE_SDK_SCOPE: Final = "langfuse-sdk"


# By instrumentation scope name. Frameworks (ADK, pydantic-ai) have no such switch: their
# model-call spans are covered silently, as designed.
OTHER_GENAI_INSTRUMENTATIONS: Final = {
    "opentelemetry.instrumentation.google_genai": OtherInstrumentation(
        "opentelemetry-instrumentation-google-genai", "google-genai"
    ),
    "openinference.instrumentation.google_genai": OtherInstrumentation(
        "openinference-instrumentation-google-genai", "google_genai"
    ),
}


class SeparateTraceFramework(NamedTuple):
    """A framework whose model-call spans describe our requests from a trace of their own."""

    name: str
    turn_off: str


# By instrumentation scope name. Their spans name neither our span nor its response id, so
# nothing links the two but the process: while our instrumentation is active there, each
# Gemini request they report is one it has priced already (langchain-google-genai calls
# google.genai.Client).
SEPARATE_TRACE_FRAMEWORKS: Final = {
    "langsmith": SeparateTraceFramework(
        "LangSmith's OTel mode (LANGSMITH_TRACING_MODE=otel)",
        "unset LANGSMITH_TRACING_MODE (LangSmith then sends its runs to LangSmith itself) or "
        "LANGSMITH_TRACING",
    ),
}
# Words in a span's provider or model that make it a Gemini request (another provider's
# calls, which our instrumentation does not see, are priced as before).
_GEMINI_WORDS: Final = ("gemini", "google", "vertex")
_PROVIDER_OR_MODEL_KEYS: Final = (
    attrs.GEN_AI_SYSTEM,
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
    attrs.GEN_AI_RESPONSE_MODEL,
)


class Release(NamedTuple):
    """A span that may now go downstream: ``covered`` says how."""

    span: ReadableSpan
    covered: bool


class _Entry:
    __slots__ = ("covered", "ended", "held", "open_children", "parent")

    def __init__(self, parent: int | None) -> None:
        self.parent = parent
        self.open_children = 0  # children that still have an entry
        self.ended = False
        self.covered = False
        self.held = False


# A span's response id and instrumentation scope.
_Link = tuple[str, str]


class _Held(NamedTuple):
    span: ReadableSpan
    deadline: float
    link: _Link | None


def scope_name(span: ReadableSpan) -> str:
    scope = span.instrumentation_scope
    return scope.name if scope is not None else ""


class Coverage:
    """The span tree seen so far, held spans and recent response ids. Thread-safe."""

    def __init__(
        self,
        *,
        max_spans: int = MAX_SPANS,
        max_held: int = MAX_HELD,
        hold_seconds: float = HOLD_SECONDS,
        max_response_ids: int = MAX_RESPONSE_IDS,
    ) -> None:
        self._max_spans = max_spans
        self._max_held = max_held
        self._hold_seconds = hold_seconds
        self._max_response_ids = max_response_ids
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")
        self._spans: dict[int, _Entry] = {}
        self._held: dict[int, _Held] = {}  # insertion order is deadline order
        self._responses: OrderedDict[str, str] = OrderedDict()  # response id -> scope name
        self._counts = {"covered": 0, "held": 0, "held_expired": 0, "hold_full": 0, "forgotten": 0}
        self._warned: set[str] = set()
        # Set once our instrumentation started a span here (SEPARATE_TRACE_FRAMEWORKS).
        self._ours_active = False
        fork_hooks(after_in_child=self._forget_in_child)

    def _forget_in_child(self) -> None:
        # The parent's held spans are the parent's to price and export: a forked child that
        # kept them would send them again (at its exit's release_held(), or their expiry).
        self._spans = {}
        self._held = {}
        self._responses = OrderedDict()
        self._counts = dict.fromkeys(self._counts, 0)

    # --- span lifecycle ----------------------------------------------------------------------

    def started(self, span: Span) -> list[Release]:
        """Record a span's place in the tree; returns held spans whose time is up."""
        context = span.context
        if context is None:
            return []
        parent = span.parent
        parent_id = parent.span_id if parent is not None else None
        if not self._ours_active and scope_name(span) == OUR_SCOPE:
            self._ours_active = True
        with self._lock:
            spans = self._spans
            if len(spans) >= self._max_spans:
                # The oldest entry: most likely a span that never ended.
                del spans[next(iter(spans))]
                self._counts["forgotten"] += 1
            spans[context.span_id] = _Entry(parent_id)
            if parent_id is not None:
                parent_entry = spans.get(parent_id)
                if parent_entry is not None:
                    parent_entry.open_children += 1
            return self._expired() if self._held else []

    def ended(
        self, span: ReadableSpan, billed: bool, declared: bool = False
    ) -> tuple[bool | None, list[Release]]:
        """A span ended. Returns its fate — ``True`` covered, ``False`` priced as before,
        ``None`` held back — and the held spans this end releases.

        ``declared``: the span is not ``billed`` but states usage or cost in Langfuse's own
        form (a Langfuse SDK generation with ``usage_details``): covered when a descendant
        with usage ended before it, else passed on as it is (never held, never priced)."""
        context = span.context
        if context is None:
            return False, []
        span_id = context.span_id
        released: list[Release] = []
        scope = scope_name(span) if billed else ""  # read outside the lock
        link = _link(span, scope) if billed else None
        with self._lock:
            entry = self._spans.get(span_id)
            if entry is None:  # not started here (the gateway's), or forgotten
                return False, self._expired() if self._held else []
            entry.ended = True
            fate: bool | None = False
            if billed:
                self._cover_ancestors(entry, released)
                if entry.covered or self._linked(link) or self._reported_by_ours(span, scope):
                    fate = True
                elif entry.open_children and scope != OUR_SCOPE:
                    if len(self._held) < self._max_held:
                        entry.held = True
                        deadline = time.monotonic() + self._hold_seconds
                        self._held[span_id] = _Held(span, deadline, link)
                        self._counts["held"] += 1
                        fate = None
                    else:
                        self._counts["hold_full"] += 1
                if fate is False:
                    self._remember_response(link)
            elif declared and entry.covered:
                fate = True
            if not entry.open_children:
                self._close(span_id, entry, released)
            if self._held:
                released.extend(self._expired())
            if fate:
                self._counts["covered"] += 1
        return fate, released

    def release_all(self) -> list[Release]:
        """Every held span, decided on what is known now (at shutdown)."""
        with self._lock:
            held = list(self._held.items())
            self._held.clear()
            released = []
            for span_id, (span, _, _) in held:
                entry = self._spans.get(span_id)
                covered = entry is not None and entry.covered
                if entry is not None:
                    entry.held = False
                if covered:
                    self._counts["covered"] += 1
                released.append(Release(span, covered))
            return released

    # --- inside the lock ---------------------------------------------------------------------

    def _cover_ancestors(self, entry: _Entry, released: list[Release]) -> None:
        spans = self._spans
        parent_id = entry.parent
        for _ in range(MAX_DEPTH):
            if parent_id is None:
                return
            ancestor = spans.get(parent_id)
            if ancestor is None:
                return
            ancestor.covered = True
            if ancestor.held:  # decided now: nothing its other descendants do can change it
                ancestor.held = False
                held = self._held.pop(parent_id, None)
                if held is not None:
                    released.append(Release(held.span, True))
                    self._counts["covered"] += 1
            parent_id = ancestor.parent

    def _close(self, span_id: int, entry: _Entry, released: list[Release]) -> None:
        """Drop an entry whose subtree has ended, and the ended ancestors this closes."""
        spans = self._spans
        for _ in range(MAX_DEPTH):
            spans.pop(span_id, None)
            if entry.held:
                entry.held = False
                held = self._held.pop(span_id, None)
                if held is not None:
                    covered = entry.covered or self._linked(held.link)
                    if covered:
                        self._counts["covered"] += 1
                    else:
                        self._remember_response(held.link)
                    released.append(Release(held.span, covered))
            parent_id = entry.parent
            if parent_id is None:
                return
            parent = spans.get(parent_id)
            if parent is None:
                return
            parent.open_children -= 1
            if not parent.ended or parent.open_children > 0:
                return
            span_id, entry = parent_id, parent

    def _expired(self) -> list[Release]:
        now = time.monotonic()
        released: list[Release] = []
        held = self._held
        while held:
            span_id, (span, deadline, _) = next(iter(held.items()))
            if deadline > now:
                break
            del held[span_id]
            entry = self._spans.get(span_id)
            if entry is not None:
                entry.held = False
            self._counts["held_expired"] += 1
            released.append(Release(span, False))
        return released

    def _linked(self, link: _Link | None) -> bool:
        """Whether a span of another instrumentation with the same response id was priced."""
        if link is None:
            return False
        scope = self._responses.get(link[0])
        # The same scope may repeat an id for different requests (a batch job's generations
        # carry the job's name): only another instrumentation's span is the same request.
        return scope is not None and scope != link[1]

    def _reported_by_ours(self, span: ReadableSpan, scope: str) -> bool:
        """Whether ``span`` (of instrumentation scope ``scope``) is a separate-trace
        framework's Gemini call while our instrumentation is active in this process."""
        if not self._ours_active or scope not in SEPARATE_TRACE_FRAMEWORKS:
            return False
        attributes = span.attributes or {}
        for key in _PROVIDER_OR_MODEL_KEYS:
            value = attributes.get(key)
            if isinstance(value, str) and any(word in value.lower() for word in _GEMINI_WORDS):
                return True
        return False

    def _remember_response(self, link: _Link | None) -> None:
        if link is None or link[0] in self._responses:
            return
        if len(self._responses) >= self._max_response_ids:
            self._responses.popitem(last=False)
        self._responses[link[0]] = link[1]

    # --- reporting ---------------------------------------------------------------------------

    def warn_once(self, span: ReadableSpan) -> None:
        """Name the other google-genai instrumentation (or the Langfuse SDK generation)
        whose span was covered, once."""
        scope = scope_name(span)
        other = OTHER_GENAI_INSTRUMENTATIONS.get(scope)
        framework = SEPARATE_TRACE_FRAMEWORKS.get(scope)
        if other is None and framework is None and scope != LANGFUSE_SDK_SCOPE:
            return
        with self._lock:
            if scope in self._warned:
                return
            self._warned.add(scope)
        if framework is not None:
            _logger.warning(
                "otel-gemini: %s reports Gemini requests (spans of scope %r, in traces of "
                "their own) that otel-gemini's instrumentation already priced in this "
                "process. otel-gemini prices its own span and marks every span of scope %r "
                "with usage otel_gemini.cost.status=covered (counted nowhere, no cost in "
                "Langfuse). To drop the duplicate spans, %s (docs/frameworks.md). Logged once.",
                framework.name,
                scope,
                scope,
                framework.turn_off,
            )
            return
        if other is None:
            _logger.warning(
                'otel-gemini: a Langfuse SDK generation (%r: @observe(as_type="generation") '
                'or start_observation(as_type="generation")) reports usage for Gemini '
                "requests otel-gemini already priced below it, so Langfuse would show each "
                "request as two generations. otel-gemini keeps its own span as the generation "
                "and marks the SDK's one otel_gemini.cost.status=covered (type span, no cost). "
                "To avoid the second generation, wrap Gemini calls in @observe() (a span) and "
                "leave usage and cost to otel-gemini (docs/langfuse.md). Logged once.",
                span.name,
            )
            return
        _logger.warning(
            "otel-gemini: %s also instruments google-genai, so each Gemini request has two "
            "spans. otel-gemini prices its own (closest to the wire) and marks the other "
            "otel_gemini.cost.status=covered (counted nowhere, no cost in Langfuse). To drop "
            "the duplicate spans, turn it off: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=%s (with "
            "opentelemetry-instrument) or do not call its instrumentor. Logged once.",
            other.package,
            other.entry_point,
        )

    def stats(self) -> dict[str, int]:
        """Covered spans, held ones (now and over time) and forgotten entries: the non-zero
        counts only (a process without duplicate spans reports nothing)."""
        with self._lock:
            counts = {**self._counts, "holding": len(self._held)}
        return {key: value for key, value in counts.items() if value}

    def tracked(self) -> int:
        """How many spans have an entry now."""
        with self._lock:
            return len(self._spans)


def _link(span: ReadableSpan, scope: str) -> _Link | None:
    attributes = span.attributes
    value = attributes.get(attrs.GEN_AI_RESPONSE_ID) if attributes else None
    # Remembered MAX_RESPONSE_IDS times over: an id (or scope) longer than any real one is
    # not, or 10,000 hostile 7 MiB ids would be 70 GB.
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        return None
    return (value, cut(scope))
