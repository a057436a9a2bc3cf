"""Live API instrumentation: what we wrap in ``google.genai.live`` and how calls reach a tracker.

``AsyncLive.connect`` returns an async context manager; we hand back one that opens the session
span around it and registers a :class:`LiveSessionTracker` for the ``AsyncSession`` it yields
(the same object, untouched). The ``AsyncSession`` methods are wrapped on the class: a session
without a tracker (opened before instrumenting, or already over) passes straight through.
Received messages are observed at ``AsyncSession._receive``, which both ``receive()`` and the
deprecated ``start_stream()`` read through. That one runs for every message, so it is replaced
by a plain function rather than a wrapt wrapper (about 3 µs less per message, see
benchmarks/live.py), and restored by :func:`uninstrument_live`.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini.budgets import Exhaustion, check_request, forget_live_session, watch_live_session
from otel_gemini.instrumentation import _content
from otel_gemini.instrumentation import _live_resumption as resumption
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._generate_content import (
    request_attributes,
    tool_definition_attributes,
)
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._live_audio import INPUT_RATE, blob_pcm, content_blobs
from otel_gemini.instrumentation._live_session import LiveSessionTracker
from otel_gemini.instrumentation._live_turn import LiveTurn
from otel_gemini.instrumentation._operations import client_attributes

LIVE_MODULE = "google.genai.live"
_SESSION_METHODS = (
    "send_client_content",
    "send_realtime_input",
    "send_tool_response",
    "send",
)

# The tracker of each open, instrumented session (weak: never keeps a session alive).
_trackers: weakref.WeakKeyDictionary[Any, LiveSessionTracker] = weakref.WeakKeyDictionary()
# What instrument_live replaced without wrapt: (owner, name, original), for uninstrument_live.
_replaced: list[tuple[Any, str, Any]] = []


class _Input(NamedTuple):
    """What one send carries, worked out before the SDK sends it."""

    opens_turn: bool
    audio: tuple[tuple[int, int], ...] = ()  # (rate, bytes) of PCM
    ends_input: bool = False
    parts: tuple[dict[str, Any], ...] = ()  # content capture only
    tool_responses: tuple[Any, ...] = ()


_NO_INPUT = _Input(opens_turn=False)


def _pcm(*blobs: Any) -> tuple[tuple[int, int], ...]:
    found = (blob_pcm(blob, INPUT_RATE) for blob in blobs if blob is not None)
    return tuple(pcm for pcm in found if pcm is not None)


def _parts_of(turns: Any) -> tuple[dict[str, Any], ...]:
    items: Iterable[Any] = turns if isinstance(turns, (list, tuple)) else (turns,)
    parts: list[dict[str, Any]] = []
    for content in items:
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
            continue
        parts.extend(_content.content_parts_json(content))
    return tuple(parts)


def _realtime_input(kwargs: dict[str, Any], capture: bool) -> _Input:
    if kwargs.get("audio_stream_end") or kwargs.get("activity_end") is not None:
        return _Input(opens_turn=False, ends_input=True)
    text = kwargs.get("text")
    parts = ({"type": "text", "content": text},) if capture and isinstance(text, str) else ()
    audio = _pcm(kwargs.get("audio"), kwargs.get("media"))
    return _Input(opens_turn=True, audio=audio, parts=parts)


def _client_content(kwargs: dict[str, Any], capture: bool) -> _Input:
    turns = kwargs.get("turns")
    audio = _pcm(*content_blobs(turns)) if turns is not None else ()
    return _Input(
        opens_turn=True,
        audio=audio,
        ends_input=bool(kwargs.get("turn_complete", True)),
        parts=_parts_of(turns) if capture and turns is not None else (),
    )


def _responses(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(value)
    responses = field(value, "function_responses")  # LiveClientToolResponse
    if responses is not None:
        return tuple(responses)
    return (value,)


def _tool_response(kwargs: dict[str, Any], capture: bool) -> _Input:
    responses = _responses(kwargs.get("function_responses"))
    return _Input(opens_turn=True, ends_input=True, tool_responses=responses)


def _deprecated_send(kwargs: dict[str, Any], capture: bool) -> _Input:
    """``send(input=..., end_of_turn=...)``: audio blobs, media chunks, tool results or text."""
    value = kwargs.get("input")
    end_of_turn = bool(kwargs.get("end_of_turn"))
    if value is None:
        return _Input(opens_turn=False, ends_input=True)
    chunks = field(value, "media_chunks")
    if chunks is not None:
        return _Input(opens_turn=True, audio=_pcm(*chunks), ends_input=end_of_turn)
    if field(value, "data") is not None:  # a Blob or blob dict
        return _Input(opens_turn=True, audio=_pcm(value), ends_input=end_of_turn)
    items = value if isinstance(value, (list, tuple)) else (value,)
    if items and all(field(item, "response") is not None for item in items):
        return _Input(opens_turn=True, ends_input=True, tool_responses=tuple(items))
    if field(value, "function_responses") is not None:
        return _Input(opens_turn=True, ends_input=True, tool_responses=_responses(value))
    turns = field(value, "turns")
    if turns is not None:  # LiveClientContent
        end_of_turn = end_of_turn or bool(field(value, "turn_complete"))
        return _client_content({"turns": turns, "turn_complete": end_of_turn}, capture)
    return _Input(
        opens_turn=True,
        ends_input=end_of_turn,
        parts=_parts_of(value) if capture and isinstance(value, (str, list, tuple)) else (),
    )


_INPUTS: dict[str, Callable[[dict[str, Any], bool], _Input]] = {
    "send_realtime_input": _realtime_input,
    "send_client_content": _client_content,
    "send_tool_response": _tool_response,
    "send": _deprecated_send,
}


class LiveWrappers:
    """wrapt wrappers for ``AsyncLive.connect`` and the ``AsyncSession`` methods."""

    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    # --- connect ---

    def connect(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        manager = wrapped(*args, **kwargs)
        if not is_instrumentation_enabled():
            return manager
        return InstrumentedConnection(manager, self._instruments, instance, kwargs)

    # --- session methods ---

    def sender(self, method: str) -> Callable[..., Any]:
        """The wrapper of one ``send*`` method."""
        describe = _INPUTS[method]
        capture = self._instruments.settings.capture_content

        async def send(wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
            tracker = _trackers.get(instance)
            if tracker is None:
                return await wrapped(*args, **kwargs)
            described, turn = _before_send(tracker, describe, kwargs, capture)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as error:
                tracker.send_failed(error)
                raise
            _after_send(tracker, described, turn)
            return result

        return send


def _before_send(
    tracker: LiveSessionTracker,
    describe: Callable[[dict[str, Any], bool], _Input],
    kwargs: dict[str, Any],
    capture: bool,
) -> tuple[_Input, LiveTurn | None]:
    try:
        described = describe(kwargs, capture)
        turn = tracker.input_turn() if described.opens_turn else tracker.open_turn_or_none()
        return described, turn
    except Exception as error:
        report_internal_error("describe live input", error)
        return _NO_INPUT, None


def _after_send(tracker: LiveSessionTracker, described: _Input, turn: LiveTurn | None) -> None:
    try:
        if turn is not None:
            for rate, size in described.audio:
                turn.input_audio.add(rate, size)
            for part in described.parts:
                turn.add_input_part(part)
            if described.ends_input:
                turn.input_ended()
        if described.tool_responses:
            tracker.tool_responses(list(described.tool_responses))
    except Exception as error:
        report_internal_error("record live input", error)


def _budget_exhausted(span: Any, hit: Exhaustion) -> None:
    """An open Live session's scope ran out of budget: an event on its span (the app decides
    whether to end the session; new sessions and requests in the scope are refused)."""
    span.add_event(
        "otel_gemini.budget.exhausted",
        {
            "otel_gemini.budget.rule": hit.rule,
            "otel_gemini.budget.scope": hit.scope,
            "otel_gemini.budget.period_end": hit.period_end.isoformat(),
        },
    )


class InstrumentedConnection:
    """What an instrumented ``client.aio.live.connect(...)`` returns: the SDK's async context
    manager, with a session span from entry to exit. ``async with`` yields the SDK's own
    ``AsyncSession``."""

    __slots__ = (
        "__weakref__",
        "_client",
        "_instruments",
        "_kwargs",
        "_manager",
        "_session",
        "_tracker",
    )

    def __init__(
        self, manager: Any, instruments: Instruments, live: Any, kwargs: dict[str, Any]
    ) -> None:
        self._manager = manager
        self._instruments = instruments
        self._client = getattr(live, "_api_client", None)
        self._kwargs = kwargs
        self._tracker: LiveSessionTracker | None = None
        self._session: Any = None

    async def __aenter__(self) -> Any:
        # A new session in an exhausted scope is refused before it connects (enforcement
        # on); an open one is never cut: it gets a span event when its scope runs out.
        check_request(self._kwargs.get("model"))
        tracker = self._start_tracker()
        if tracker is None:
            return await self._manager.__aenter__()
        try:
            with tracker.session.activate():
                session = await self._manager.__aenter__()
        except BaseException as error:
            tracker.connect_failed(error)
            raise
        # Set first: whatever happens next, the session span ends at exit.
        self._tracker = tracker
        self._session = session
        try:
            tracker.connected(session)
            _trackers[session] = tracker
            span = tracker.session.span
            watch_live_session(
                self, self._kwargs.get("model"), lambda hit: _budget_exhausted(span, hit)
            )
        except Exception as error:
            report_internal_error("start live session", error)
        return session

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        tracker = self._tracker
        if tracker is None:
            return await self._manager.__aexit__(exc_type, exc, traceback)
        self._tracker = None
        try:
            suppressed = await self._manager.__aexit__(exc_type, exc, traceback)
        except BaseException as error:
            self._end(tracker, error)
            raise
        self._end(tracker, None if suppressed else exc)
        return suppressed

    def _end(self, tracker: LiveSessionTracker, error: BaseException | None) -> None:
        try:
            forget_live_session(self)
            _trackers.pop(self._session, None)
        except Exception as internal:  # an unhashable session would never have been added
            report_internal_error("end live session", internal)
        tracker.end(error)

    def _start_tracker(self) -> LiveSessionTracker | None:
        try:
            kwargs = self._kwargs
            model = bare_model_name(str(kwargs.get("model") or ""))
            config = kwargs.get("config")
            base = client_attributes(self._client) if self._client is not None else {}
            base[attrs.GEN_AI_REQUEST_MODEL] = model
            base[attrs.SDK_METHOD] = attrs.SDK_METHOD_LIVE_CONNECT
            base.update(request_attributes(config))
            modalities = field(config, "response_modalities")
            if modalities:
                base[attrs.LIVE_RESPONSE_MODALITIES] = [_enum_name(m) for m in modalities]
            session: dict[str, AttributeValue] = {
                **base,
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_LIVE_SESSION,
                # Groups its turns; the turns are the billed generations.
                attrs.LANGFUSE_OBSERVATION_TYPE: "span",
            }
            settings = self._instruments.settings
            if settings.capture_content:
                system = _content.system_instructions(field(config, "system_instruction"))
                if system:
                    session[attrs.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.to_limited_json(
                        system, settings.content_max_length
                    )
            turn: dict[str, AttributeValue] = {
                **base,
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                attrs.LANGFUSE_OBSERVATION_TYPE: "generation",
            }
            if settings.capture_content:
                # Each turn is a generation offered the session's tools.
                turn.update(tool_definition_attributes(config, settings, self._client))
            handle = field(field(config, "session_resumption"), "handle")
            resumes = None
            if isinstance(handle, str) and handle:
                session[attrs.LIVE_RESUMED] = True
                resumes = resumption.handles.find(handle)
            return LiveSessionTracker(self._instruments, model, session, turn, resumes)
        except Exception as error:
            report_internal_error("start live session", error)
            return None

    def __getattr__(self, name: str) -> Any:
        # Anything else the SDK's context manager offers (only reached for missing names).
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._manager, name)


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value))


def instrument_live(instruments: Instruments) -> list[tuple[Any, str]]:
    """Wraps ``AsyncLive.connect`` and the session methods; returns what to unwrap later."""
    try:
        from google.genai import live
    except ImportError:  # an SDK without the Live API
        return []
    wrappers = LiveWrappers(instruments)
    patched: list[tuple[Any, str]] = []
    if "connect" in live.AsyncLive.__dict__:
        wrap_function_wrapper(LIVE_MODULE, "AsyncLive.connect", wrappers.connect)
        patched.append((live.AsyncLive, "connect"))
    for method in _SESSION_METHODS:
        if method not in live.AsyncSession.__dict__:
            continue
        wrap_function_wrapper(LIVE_MODULE, f"AsyncSession.{method}", wrappers.sender(method))
        patched.append((live.AsyncSession, method))
    original = live.AsyncSession.__dict__.get("_receive")
    if original is not None:
        setattr(live.AsyncSession, "_receive", _observed_receive(original))  # noqa: B010
        _replaced.append((live.AsyncSession, "_receive", original))
    return patched


def uninstrument_live() -> None:
    """Puts back what :func:`instrument_live` replaced without wrapt."""
    while _replaced:
        owner, name, original = _replaced.pop()
        setattr(owner, name, original)


def _observed_receive(original: Callable[..., Any]) -> Callable[..., Any]:
    """``AsyncSession._receive`` reporting each message (or failure) to the session's tracker."""

    async def _receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        tracker = _trackers.get(self)
        if tracker is None:
            return await original(self, *args, **kwargs)
        try:
            message = await original(self, *args, **kwargs)
        except BaseException as error:
            tracker.receive_failed(error)
            raise
        tracker.on_message(message)
        return message

    return functools.wraps(original)(_receive)
