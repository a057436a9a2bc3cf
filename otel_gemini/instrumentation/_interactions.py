"""The Interactions API (``client.interactions.create``, google-genai 1.55 and later).

google-genai 2.9 and later: we wrap the generated client's ``Interactions.create`` and
``AsyncInteractions.create``, which the public ``create`` calls once per HTTP request:
automatic continuation sends one per hop (each hop is an interaction of its own, billed with
its own usage), and a dropped stream is resumed with another. So, as for ``generateContent``,
each billed request gets its own span. Earlier releases (1.55 to 2.8) have another generated
client, ``InteractionsResource``, whose ``create`` is one request (no automatic continuation).

``get`` is wrapped too: a fetch is a ``fetch_response`` span without usage, and the first
fetch returning finished an interaction this process created unfinished (background, Live)
records its generation (``_pending_generations``).

A streamed create returns the SDK's ``Stream``, whose type the public layer checks before it
rewires the stream's iterator; so we keep that object and put our chunk-reporting iterator
in its place instead of returning a wrapper.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini.instrumentation import _content
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._generate_content import request_attributes
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._invocation import Invocation
from otel_gemini.instrumentation._live_interactions import instrument_live_interactions
from otel_gemini.instrumentation._operations import (
    SpanWrappers,
    client_attributes,
    is_async,
    provider_attributes,
)
from otel_gemini.instrumentation._pending_generations import (
    PendingGenerations,
    pending_generation,
    record_generation,
)
from otel_gemini.instrumentation._settings import InstrumentationSettings
from otel_gemini.instrumentation._stream import InstrumentedStream
from otel_gemini.instrumentation._usage import interaction_usage_attributes


class _Layout(NamedTuple):
    """Where one generation of google-genai keeps its Interactions client."""

    module: str  # the module of the client classes
    classes: tuple[str, str]  # sync, async
    types: str  # the module exporting ``Interaction``
    streaming: str  # the module exporting ``Stream`` and ``AsyncStream``
    iterator: str  # the attribute a stream reads its events from


_LAYOUTS = (
    _Layout(
        "google.genai._gaos.interactions",
        ("Interactions", "AsyncInteractions"),
        "google.genai._gaos.types.interactions",
        "google.genai._gaos.utils.eventstreaming",
        "generator",
    ),
    _Layout(
        "google.genai._interactions.resources.interactions",
        ("InteractionsResource", "AsyncInteractionsResource"),
        "google.genai._interactions.types",
        "google.genai._interactions._streaming",
        "_iterator",
    ),
)

# Interaction.status → the conventions' finish reason, where one fits. A hop that stopped at
# the per-request decode limit (requires_continuation) ran out of length like max_tokens.
_FINISH_REASONS = {
    "completed": "stop",
    "incomplete": "length",
    "budget_exceeded": "length",
    "requires_continuation": "length",
    "requires_action": "tool_calls",
    "failed": "error",
    "cancelled": "error",
}
FINISHED_STATUSES = frozenset(_FINISH_REASONS)
"""Statuses of an interaction whose generation is over (not ``in_progress``, ``queued``...)."""
# Interaction.status → gen_ai.response.status, where the conventions' value set spells it
# otherwise (a status with no member there is reported as it is).
_RESPONSE_STATUSES = {"budget_exceeded": "incomplete", "requires_continuation": "incomplete"}


class InteractionRecorder:
    """Reads an ``Interaction``, or the SSE events of a streamed one.

    Events carry the interaction (``interaction.created`` / ``.completed``) or the usage so far
    (``step.stop``); the last one wins, as with generateContent chunks. An in-band ``error``
    event (the stream itself succeeded) sets ``error.type`` to the error's code.

    ``fetched``: the interaction was fetched (``interactions.get``), not made by this request,
    so its usage is not this span's (:meth:`generation_attributes` has it) and its status is
    reported as ``gen_ai.response.status``. ``agent``: the span is an agent's ``invoke_agent``,
    whose usage Langfuse drops; the usage goes on a generation span of its own
    (:meth:`generation_attributes`).
    """

    __slots__ = (
        "_agent",
        "_error",
        "_fetched",
        "_id",
        "_max_length",
        "_model",
        "_output",
        "_status",
        "_updated",
        "_usage",
    )

    def __init__(
        self, settings: InstrumentationSettings, *, fetched: bool = False, agent: bool = False
    ) -> None:
        self._max_length = settings.content_max_length
        self._fetched = fetched
        self._agent = agent
        self._id: str | None = None
        self._model: str | None = None
        self._status: str | None = None
        self._updated: str | datetime | None = None
        self._usage: Any = None
        self._error: str | None = None
        # Output text and parts, only with content capture.
        self._output: list[dict[str, Any]] | None = [] if settings.capture_content else None

    @property
    def interaction_id(self) -> str | None:
        """The interaction's id, once a response has carried it."""
        return self._id

    @property
    def status(self) -> str | None:
        """The interaction's last reported status."""
        return self._status

    @property
    def has_usage(self) -> bool:
        """Whether a response reported the interaction's usage."""
        return self._usage is not None

    @property
    def updated(self) -> str | datetime | None:
        """When the interaction was last updated: ISO 8601 text (google-genai 2.9 and later)
        or a ``datetime`` (earlier)."""
        return self._updated

    def add(self, response: Any) -> None:
        event_type = field(response, "event_type")
        if not isinstance(event_type, str):
            self._take(response, whole=True)
            return
        if event_type == "error":
            code = field(field(response, "error"), "code")
            self._error = str(code) if code else "error"
            return
        interaction = field(response, "interaction")
        if interaction is not None:
            self._take(interaction, whole=False)
        usage = field(response, "usage")
        if usage is not None:
            self._usage = usage
        if self._output is not None and event_type == "step.delta":
            delta = field(response, "delta")
            text = field(delta, "text")
            if field(delta, "type") == "text" and isinstance(text, str):
                _append_text(self._output, text)

    def _take(self, interaction: Any, whole: bool) -> None:
        identifier = field(interaction, "id")
        if isinstance(identifier, str) and identifier:
            self._id = identifier
        model = field(interaction, "model")
        if isinstance(model, str) and model:
            self._model = model
        status = field(interaction, "status")
        if isinstance(status, str) and status:
            self._status = status
        updated = field(interaction, "updated")
        if isinstance(updated, (str, datetime)) and updated:
            self._updated = updated
        usage = field(interaction, "usage")
        if usage is not None:
            self._usage = usage
        if whole and self._output is not None:
            self._output.extend(_output_parts(field(interaction, "steps")))

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self._attributes(fetch=self._fetched, usage=not (self._fetched or self._agent))

    def generation_attributes(self) -> dict[str, AttributeValue]:
        """What the generation that made the interaction gets: its id, model, status, finish
        reason, usage and (with content capture) output."""
        return self._attributes(fetch=False, usage=True)

    def _attributes(self, fetch: bool, usage: bool) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {}
        if self._id:
            result[attrs.GEN_AI_RESPONSE_ID] = self._id
        if self._model:
            result[attrs.GEN_AI_RESPONSE_MODEL] = bare_model_name(self._model)
        finish = None
        if self._status:
            result[attrs.INTERACTION_STATUS] = self._status
            finish = _FINISH_REASONS.get(self._status)
            if fetch:
                result[attrs.GEN_AI_RESPONSE_STATUS] = _RESPONSE_STATUSES.get(
                    self._status, self._status
                )
        if self._error is not None:
            finish = "error"
            result[attrs.ERROR_TYPE] = self._error
        if finish is not None:
            result[attrs.GEN_AI_RESPONSE_FINISH_REASONS] = [finish]
        if self._usage is not None and usage:
            result.update(interaction_usage_attributes(self._usage))
        if self._output:
            message: dict[str, Any] = {"role": "assistant", "parts": self._output}
            if finish is not None:
                message["finish_reason"] = finish
            result[attrs.GEN_AI_OUTPUT_MESSAGES] = _content.to_limited_json(
                [message], self._max_length
            )
        return result


_STREAM_KEYS = (
    attrs.STREAM_COMPLETED,
    attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
    attrs.LANGFUSE_COMPLETION_START_TIME,
)
"""What a streamed request's span learns of its stream, an agent's generation child too."""


def _agent_generation(attributes: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """The request attributes of the generation an agent's request bills: the agent's (its
    name says what ran when the response names no model) under an inference operation
    Langfuse prices, ``generate_content`` as for a model's interaction."""
    generation = {
        key: value for key, value in attributes.items() if key != attrs.LANGFUSE_OBSERVATION_TYPE
    }
    generation[attrs.GEN_AI_OPERATION_NAME] = attrs.OP_GENERATE_CONTENT
    return generation


def _append_text(parts: list[dict[str, Any]], text: str) -> None:
    """Streamed text deltas join into one text part."""
    if parts and parts[-1].get("type") == "text":
        parts[-1]["content"] += text
    else:
        parts.append({"type": "text", "content": text})


def _content_part(item: Any) -> dict[str, Any]:
    """One Interactions content item (``{"type": "text", "text": ...}``, media, ...) as a
    GenAI part; media never inlined."""
    if isinstance(item, str):
        return {"type": "text", "content": item}
    kind = field(item, "type")
    text = field(item, "text")
    if isinstance(text, str):
        return {"type": "reasoning" if kind == "thought" else "text", "content": text}
    data = field(item, "data")
    if isinstance(data, (str, bytes)):
        # base64 text: 4 characters carry 3 bytes.
        size = len(data) * 3 // 4 if isinstance(data, str) else len(data)
        return {"type": "blob", "mime_type": field(item, "mime_type"), "size": size}
    uri = field(item, "uri")
    if isinstance(uri, str):
        return {"type": "uri", "mime_type": field(item, "mime_type"), "uri": uri}
    return {"type": str(kind) if kind else "unknown"}


def _output_parts(steps: Any) -> list[dict[str, Any]]:
    """The parts of an interaction's ``model_output`` steps."""
    parts: list[dict[str, Any]] = []
    for step in steps or ():
        if field(step, "type") == "model_output":
            parts.extend(_content_part(item) for item in field(step, "content") or ())
    return parts


# Input steps that are a conversation's messages (the SDK turns a list of contents into one
# user_input step before the request layer we wrap).
_STEP_ROLES = {"user_input": "user", "model_output": "assistant"}


def _input_messages(given: Any) -> list[dict[str, Any]]:
    """A create request's ``input`` (a string, content, contents or steps) as GenAI messages."""
    items = list(given) if isinstance(given, (list, tuple)) else [given]
    messages: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []
    for item in items:
        kind = field(item, "type")
        role = _STEP_ROLES.get(kind) if isinstance(kind, str) else None
        if role is None:
            loose.append(_content_part(item))
            continue
        content = field(item, "content") or ()
        messages.append({"role": role, "parts": [_content_part(part) for part in content]})
    if loose:
        messages.append({"role": "user", "parts": loose})
    return messages


def _request_body(kwargs: Mapping[str, Any]) -> Any:
    """The create request's body: ``request=CreateInteractionRequest(body=...)`` (what the
    SDK's continuation hops send) or the body's fields as keyword arguments."""
    request = kwargs.get("request")
    body = field(request, "body") if request is not None else None
    return body if body is not None else kwargs


class InteractionWrappers(SpanWrappers):
    """``generate_content {model}`` spans per create request; an agent's request is an
    ``invoke_agent {agent}`` span with a ``generate_content`` child carrying its usage."""

    def __init__(
        self,
        instruments: Instruments,
        interaction_type: type,
        stream_types: tuple[type, ...],
        stream_iterator: str,
        pending: PendingGenerations,
    ) -> None:
        self._instruments = instruments
        self._interaction_type = interaction_type
        self._stream_types = stream_types
        self._stream_iterator = stream_iterator
        self._pending = pending

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        if not is_instrumentation_enabled():
            return None
        try:
            body = _request_body(kwargs)
            attributes = self._client_attributes(instance)
            attributes[attrs.SDK_METHOD] = attrs.SDK_METHOD_INTERACTIONS_CREATE
            agent = field(body, "agent")
            if agent:
                operation, name = attrs.OP_INVOKE_AGENT, str(agent)
                attributes[attrs.GEN_AI_AGENT_NAME] = name
                # A grouping span, as the AFC parent: its generation child is the billed one.
                attributes[attrs.LANGFUSE_OBSERVATION_TYPE] = "agent"
            else:
                operation = attrs.OP_GENERATE_CONTENT
                name = bare_model_name(str(field(body, "model") or ""))
                attributes[attrs.GEN_AI_REQUEST_MODEL] = name
            attributes[attrs.GEN_AI_OPERATION_NAME] = operation
            # service_tier and response_mime_type sit on the body, sampling on its config.
            attributes.update(request_attributes(body))
            attributes.update(request_attributes(field(body, "generation_config")))
            if field(body, "background") is True:
                attributes[attrs.INTERACTION_BACKGROUND] = True
            settings = self._instruments.settings
            if settings.capture_content:
                self._capture_input(body, settings, attributes)
            recorder = InteractionRecorder(settings, agent=bool(agent))
            span_name = f"{operation} {name}"
            return Invocation(
                self._instruments,
                span_name,
                attributes,
                recorder,
                on_finish=partial(self._finished, recorder, span_name, attributes, bool(agent)),
            )
        except Exception as error:
            report_internal_error("start interactions.create", error)
            return None

    def _finished(
        self,
        recorder: InteractionRecorder,
        span_name: str,
        attributes: Mapping[str, AttributeValue],
        agent: bool,
        invocation: Invocation,
        result: Mapping[str, AttributeValue],
    ) -> None:
        """After a create's span ended: an agent's usage goes on a generation child (Langfuse
        reads no usage or cost of an ``invoke_agent`` span); an interaction answered before it
        ran (background: ``in_progress`` or ``queued``; a Live one: ``idle``) stays pending
        until a fetch returns its usage. One answered finished was billed by now, or has
        nothing to bill."""
        if agent:
            # ``attributes`` now holds the trace attributes the Invocation stamped too.
            span_name, attributes = attrs.OP_GENERATE_CONTENT, _agent_generation(attributes)
            if recorder.has_usage:
                # Billed by this request: the generation spans the same time as the request,
                # and a stream's first-chunk time is its too (Langfuse shows it on generations).
                generation = recorder.generation_attributes()
                generation.update((key, result[key]) for key in _STREAM_KEYS if key in result)
                end_time = getattr(invocation.span, "end_time", None)
                record_generation(
                    self._instruments,
                    pending_generation(span_name, attributes, invocation),
                    generation,
                    None,
                    None,
                    ended_ns=end_time if isinstance(end_time, int) else None,
                )
                return
        elif attrs.GEN_AI_USAGE_INPUT_TOKENS in result:
            return
        interaction_id = recorder.interaction_id
        if interaction_id is None or recorder.status in FINISHED_STATUSES:
            return
        self._pending.add(interaction_id, pending_generation(span_name, attributes, invocation))

    @staticmethod
    def _client_attributes(instance: Any) -> dict[str, AttributeValue]:
        api_client = getattr(instance, "_api_client", None)  # 2.9+: the SDK's own client
        if api_client is not None:
            return client_attributes(api_client)
        client = getattr(instance, "_client", None)  # 1.55 to 2.8: the generated client
        if client is not None:
            base_url = getattr(client, "base_url", None)
            vertex = bool(getattr(client, "_is_vertex", False))
            return provider_attributes(vertex, str(base_url) if base_url else None)
        server_url = getattr(getattr(instance, "sdk_configuration", None), "server_url", None)
        return provider_attributes(False, server_url or None)

    @staticmethod
    def _capture_input(
        body: Any, settings: InstrumentationSettings, into: dict[str, AttributeValue]
    ) -> None:
        try:
            given = field(body, "input")
            if given is not None:
                into[attrs.GEN_AI_INPUT_MESSAGES] = _content.to_limited_json(
                    _input_messages(given), settings.content_max_length
                )
            system = field(body, "system_instruction")
            if isinstance(system, str) and system:
                into[attrs.GEN_AI_SYSTEM_INSTRUCTIONS] = _content.to_limited_json(
                    [{"type": "text", "content": system}], settings.content_max_length
                )
            definitions = _content.interaction_tool_definitions(field(body, "tools"))
            encoded = _content.tool_definitions_json(definitions, settings.content_max_length)
            if definitions and encoded:
                into[attrs.GEN_AI_TOOL_DEFINITIONS] = encoded
        except Exception as error:
            report_internal_error("capture interaction input", error)

    def _complete(self, invocation: Invocation, result: Any) -> Any:
        if isinstance(result, self._stream_types):
            name = self._stream_iterator
            try:
                setattr(result, name, InstrumentedStream(getattr(result, name), invocation))
                _end_on_close(result, invocation)
            except Exception as error:
                report_internal_error("wrap interaction stream", error)
                invocation.finish()
            return result
        # Anything else (e.g. a raw response asked for with with_raw_response) is returned
        # untouched: reading it could consume what the caller means to read.
        invocation.complete(result if isinstance(result, self._interaction_type) else None)
        return result


class FetchWrappers(InteractionWrappers):
    """``fetch_response`` spans per ``get`` request (streamed or not); the first fetch that
    returns finished an interaction this process created unfinished records its generation
    (see ``_pending_generations``)."""

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        if not is_instrumentation_enabled():
            return None
        try:
            attributes = self._client_attributes(instance)
            attributes[attrs.SDK_METHOD] = attrs.SDK_METHOD_INTERACTIONS_GET
            attributes[attrs.GEN_AI_OPERATION_NAME] = attrs.OP_FETCH_RESPONSE
            # Not a generation: Langfuse would otherwise list it as one.
            attributes[attrs.LANGFUSE_OBSERVATION_TYPE] = "span"
            interaction_id = args[0] if args else kwargs.get("id")
            if isinstance(interaction_id, str) and interaction_id:
                attributes[attrs.GEN_AI_RESPONSE_ID] = interaction_id
            cursor = kwargs.get("last_event_id")
            if kwargs.get("stream") is True and isinstance(cursor, str) and cursor:
                attributes[attrs.GEN_AI_REQUEST_STREAM_CURSOR] = cursor
            recorder = InteractionRecorder(self._instruments.settings, fetched=True)
            # The conventions keep the (high-cardinality) id out of the span name.
            return Invocation(
                self._instruments,
                attrs.OP_FETCH_RESPONSE,
                attributes,
                recorder,
                on_finish=partial(self._fetched, recorder),
            )
        except Exception as error:
            report_internal_error("start interactions.get", error)
            return None

    def _fetched(
        self,
        recorder: InteractionRecorder,
        invocation: Invocation,
        result: Mapping[str, AttributeValue],
    ) -> None:
        interaction_id = recorder.interaction_id
        if interaction_id is None or recorder.status not in FINISHED_STATUSES:
            return
        pending = self._pending.take(interaction_id)
        if pending is not None:
            record_generation(
                self._instruments,
                pending,
                recorder.generation_attributes(),
                recorder.updated,
                invocation.span.get_span_context(),
            )


def _end_on_close(stream: Any, invocation: Invocation) -> None:
    """Make the stream's ``close`` (which only closes the HTTP response) end the span, not
    completed; the SDK's own automatic continuation wraps ``close`` the same way."""
    original = stream.close
    if inspect.iscoroutinefunction(original):

        async def close_async() -> None:
            try:
                await original()
            finally:
                invocation.finish(stream_completed=False)

        stream.close = close_async
        return

    def close() -> None:
        try:
            original()
        finally:
            invocation.finish(stream_completed=False)

    stream.close = close


def instrument_interactions(instruments: Instruments) -> list[tuple[Any, str]]:
    """Wraps ``create`` and ``get`` of the Interactions clients this google-genai has; returns
    what it patched, for ``unwrap``."""
    for layout in _LAYOUTS:
        try:
            module = importlib.import_module(layout.module)
            interaction_type = importlib.import_module(layout.types).Interaction
            streaming = importlib.import_module(layout.streaming)
        except (ImportError, AttributeError):
            continue
        stream_types = (streaming.Stream, streaming.AsyncStream)
        pending = PendingGenerations()
        patched: list[tuple[Any, str]] = []
        for method_name, wrappers_type in (("create", InteractionWrappers), ("get", FetchWrappers)):
            wrappers = wrappers_type(
                instruments, interaction_type, stream_types, layout.iterator, pending
            )
            for name in layout.classes:
                cls = getattr(module, name, None)
                method = cls.__dict__.get(method_name) if cls is not None else None
                if method is None:
                    continue
                wrapper = wrappers.async_ if is_async(method) else wrappers.sync
                wrap_function_wrapper(layout.module, f"{name}.{method_name}", wrapper)
                patched.append((cls, method_name))
        return patched + instrument_live_interactions(instruments, pending)
    return []  # before 1.55: no Interactions API
