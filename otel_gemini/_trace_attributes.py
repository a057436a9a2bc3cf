"""``trace_attributes()``: user, session, tags and metadata for every span started inside.

The values live in a :class:`contextvars.ContextVar`, so they follow ``asyncio`` tasks and
``asyncio.to_thread`` the same way OpenTelemetry's own context does. Spans pick them up in two
places: our instrumentation stamps them onto the spans it starts, and
:class:`TraceAttributesSpanProcessor` (installed by ``configure()``) stamps them onto every
other span, so a user's own spans carry them too.

Where the context sets no user or session, a span started under a parent of this process
takes the parent's (``langfuse.user.id`` / ``user.id``; ``langfuse.session.id`` /
``session.id`` / ``gen_ai.conversation.id``, the session an agent framework names): a
framework's model-call span carries the conversation, the google-genai call below it would
not, and it is that span the cost store and Langfuse bill. See ``docs/frameworks.md``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs

_EMPTY: Mapping[str, AttributeValue] = MappingProxyType({})
_current: ContextVar[Mapping[str, AttributeValue]] = ContextVar("otel_gemini_trace_attributes")


def _metadata_value(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    return json.dumps(value, default=str, sort_keys=True)


@contextmanager
def trace_attributes(
    user_id: str | None = None,
    session_id: str | None = None,
    tags: Sequence[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[None]:
    """Stamp ``user.id``, ``session.id``, tags and metadata onto every span started inside.

    Nested blocks inherit and override the enclosing values; tags accumulate. Works in sync
    and async code (the values are carried by a context variable)::

        with otel_gemini.trace_attributes(user_id="u-42", session_id="call-7", tags=["voice"]):
            client.models.generate_content(model="gemini-2.5-flash", contents="hi")

    Metadata values that are not strings, numbers or booleans are stored as JSON strings under
    ``langfuse.trace.metadata.<key>``.
    """
    merged: dict[str, AttributeValue] = dict(_current.get(_EMPTY))
    if user_id is not None:
        merged[attrs.USER_ID] = str(user_id)
    if session_id is not None:
        merged[attrs.SESSION_ID] = str(session_id)
    if tags:
        previous = merged.get(attrs.LANGFUSE_TRACE_TAGS, ())
        combined = list(previous) if isinstance(previous, (list, tuple)) else []
        combined.extend(str(t) for t in tags if str(t) not in combined)
        merged[attrs.LANGFUSE_TRACE_TAGS] = tuple(combined)
    for key, value in (metadata or {}).items():
        merged[attrs.LANGFUSE_TRACE_METADATA_PREFIX + str(key)] = _metadata_value(value)
    token = _current.set(merged)
    try:
        yield
    finally:
        _current.reset(token)


def current_trace_attributes() -> Mapping[str, AttributeValue]:
    """The attributes ``trace_attributes()`` has set in the current context (maybe empty)."""
    return _current.get(_EMPTY)


@contextmanager
def restored_trace_attributes(values: Mapping[str, AttributeValue]) -> Iterator[None]:
    """Makes ``values`` (read earlier with :func:`current_trace_attributes`) the current
    ones inside the block, for spans recorded later on behalf of that earlier context."""
    token = _current.set(values)
    try:
        yield
    finally:
        _current.reset(token)


class TraceAttributesSpanProcessor(SpanProcessor):
    """Copies the current ``trace_attributes()`` onto each span as it starts, and the
    parent span's user and session where those set none (see the module docstring)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        values = _current.get(_EMPTY)
        if values:
            span.set_attributes(values)
            if attrs.USER_ID in values and attrs.SESSION_ID in values:
                return
        # The parent's user and session: only the SDK's own spans have readable attributes
        # (a remote parent has none); a finished parent has them still.
        parent = trace.get_current_span(parent_context)
        attributes = parent.attributes if isinstance(parent, ReadableSpan) else None
        if not attributes:
            return
        if attrs.USER_ID not in values:
            user = _text(attributes, attrs.USER_ID_KEYS)
            if user is not None:
                span.set_attribute(attrs.USER_ID, user)
        if attrs.SESSION_ID not in values:
            session = _text(attributes, attrs.SESSION_ID_KEYS)
            if session is not None:
                span.set_attribute(attrs.SESSION_ID, session)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def _text(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` with a non-empty string value (runs on every span start)."""
    for key in keys:
        value = attributes.get(key)
        if value and isinstance(value, str):
            return value
    return None
