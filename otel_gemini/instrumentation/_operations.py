"""What we wrap in google-genai, and how each call becomes a span.

Spans are made at the per-request layer (``Models._generate_content`` and
``_generate_content_stream``): automatic function calling (AFC) and automatic continuation
send several billed requests inside one public call, and each must carry its own usage. The
public ``generate_content``/``generate_content_stream`` get a parent span only when AFC is
active, so a plain call is one span. Chats call ``models.generate_content`` and need no
wrapper of their own (no double spans).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini.budgets import check_request
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._generate_content import (
    AgentAnswerRecorder,
    GenerateContentRecorder,
    input_content_attributes,
    request_attributes,
    tool_definition_attributes,
)
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._invocation import Invocation, NoResponse, ResponseRecorder
from otel_gemini.instrumentation._metric_points import MetricPoints
from otel_gemini.instrumentation._recorders import (
    CountTokensRecorder,
    EmbeddingsRecorder,
    ImagesRecorder,
    start_tool_invocation,
)
from otel_gemini.instrumentation._settings import InstrumentationSettings
from otel_gemini.instrumentation._stream import InstrumentedStream


class Call(NamedTuple):
    """What a wrapped SDK method was asked to do, whatever the method's own signature."""

    api_client: Any
    model: str
    config: Any
    kwargs: Mapping[str, Any]
    contents: Any = None
    """What the user sent: ``contents``, or a chat's ``message``."""


def models_call(instance: Any, args: Any, kwargs: Mapping[str, Any]) -> Call:
    """``Models`` / ``AsyncModels`` methods take keyword arguments only."""
    return Call(
        instance._api_client,
        str(kwargs.get("model") or ""),
        kwargs.get("config"),
        kwargs,
        kwargs.get("contents"),
    )


def models_config(instance: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
    """``Models`` / ``AsyncModels``: the ``config`` keyword."""
    return kwargs.get("config")


def chat_config(instance: Any, args: Any, kwargs: Mapping[str, Any]) -> Any:
    """``Chat.send_message(message, config=None)``: the chat's own config unless overridden."""
    return kwargs.get("config", args[1] if len(args) > 1 else None) or instance._config


def chat_call(instance: Any, args: Any, kwargs: Mapping[str, Any]) -> Call:
    """``Chat.send_message(message, config=None)``: the message is what the user sent."""
    config = chat_config(instance, args, kwargs)
    message = args[0] if args else kwargs.get("message")
    return Call(instance._modules._api_client, str(instance._model), config, kwargs, message)


RequestAttributes = Callable[[Call, InstrumentationSettings], dict[str, AttributeValue]]


@dataclass(frozen=True)
class Operation:
    """How one SDK method becomes a span."""

    method: str
    operation: str
    owner: str  # "models" (Models, AsyncModels) or "chats" (Chat, AsyncChat)
    recorder: Callable[[InstrumentationSettings], ResponseRecorder]
    request: RequestAttributes | None = None
    streaming: bool = False
    observation_type: str | None = None
    # The AFC parent: made only when AFC is active and no AFC parent is already open.
    afc_parent: bool = False


def _generate_request(call: Call, settings: InstrumentationSettings) -> dict[str, AttributeValue]:
    result = request_attributes(call.config)
    if settings.capture_content:
        try:
            result.update(
                input_content_attributes(call.contents, call.config, settings, call.api_client)
            )
            result.update(tool_definition_attributes(call.config, settings, call.api_client))
        except Exception as error:
            report_internal_error("capture input content", error)
    return result


def _agent_request(call: Call, settings: InstrumentationSettings) -> dict[str, AttributeValue]:
    """The AFC parent's input, the user's own (content capture only): Langfuse takes a
    trace's input and output from its root, and the parent is the root of an AFC trace."""
    if not settings.capture_content:
        return {}
    try:
        return input_content_attributes(call.contents, call.config, settings, call.api_client)
    except Exception as error:
        report_internal_error("capture agent input", error)
        return {}


def _images_request(call: Call, settings: InstrumentationSettings) -> dict[str, AttributeValue]:
    count = field(call.config, "number_of_images")
    return {"otel_gemini.request.image_count": count} if isinstance(count, int) else {}


def _videos_request(call: Call, settings: InstrumentationSettings) -> dict[str, AttributeValue]:
    # Veo bills per second of generated video; the request states how much it asks for.
    config = call.config
    seconds = field(config, "duration_seconds")
    count = field(config, "number_of_videos") or 1
    if isinstance(seconds, (int, float)) and isinstance(count, int):
        return {attrs.USAGE_OUTPUT_VIDEO_SECONDS: float(seconds) * count}
    return {}


def afc_active(config: Any) -> bool:
    """Whether the SDK will run automatic function calling for a call with ``config``."""
    tools = field(config, "tools")
    if not tools or not any(callable(tool) for tool in tools):
        return False
    afc = field(config, "automatic_function_calling")
    if afc is not None:
        if field(afc, "disable"):
            return False
        maximum = field(afc, "maximum_remote_calls")
        if isinstance(maximum, int) and maximum <= 0:
            return False
    return True


def _no_response(settings: InstrumentationSettings) -> ResponseRecorder:
    return NoResponse()


GENERATE = attrs.OP_GENERATE_CONTENT
OPERATIONS: tuple[Operation, ...] = (
    Operation("_generate_content", GENERATE, "models", GenerateContentRecorder, _generate_request),
    Operation(
        "_generate_content_stream",
        GENERATE,
        "models",
        GenerateContentRecorder,
        _generate_request,
        streaming=True,
    ),
    Operation("embed_content", attrs.OP_EMBEDDINGS, "models", EmbeddingsRecorder),
    Operation(
        "count_tokens", "count_tokens", "models", CountTokensRecorder, observation_type="span"
    ),
    Operation(
        "compute_tokens", "compute_tokens", "models", CountTokensRecorder, observation_type="span"
    ),
    Operation("generate_images", "generate_images", "models", ImagesRecorder, _images_request),
    Operation("generate_videos", "generate_videos", "models", _no_response, _videos_request),
    # AFC parents: google-genai 3.x chats run their own AFC loop, 1.x/2.x delegate to models.
    *(
        Operation(
            method,
            attrs.OP_INVOKE_AGENT,
            owner,
            AgentAnswerRecorder,
            _agent_request,
            streaming=method.endswith("_stream"),
            observation_type="agent",
            afc_parent=True,
        )
        for owner, methods in (
            ("models", ("generate_content", "generate_content_stream")),
            ("chats", ("send_message", "send_message_stream")),
        )
        for method in methods
    ),
)

CALL_INFO: dict[str, Callable[[Any, Any, Mapping[str, Any]], Call]] = {
    "models": models_call,
    "chats": chat_call,
}
# Just the config: all an AFC parent's wrapper needs to learn that a call makes no parent.
CALL_CONFIG: dict[str, Callable[[Any, Any, Mapping[str, Any]], Any]] = {
    "models": models_config,
    "chats": chat_config,
}

# In the context while an AFC parent span is current, so a chat's parent and the models
# call inside it (google-genai 1.x/2.x) do not both make one.
_AFC_PARENT_OPEN = otel_context.create_key("otel_gemini.afc_parent_open")


@lru_cache(maxsize=64)
def _server(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return parts.hostname or "", port


def client_attributes(client: Any) -> dict[str, AttributeValue]:
    vertex = bool(getattr(client, "vertexai", False))
    base_url = getattr(getattr(client, "_http_options", None), "base_url", None)
    return provider_attributes(vertex, str(base_url) if base_url else None)


def provider_attributes(vertex: bool, base_url: str | None) -> dict[str, AttributeValue]:
    result: dict[str, AttributeValue] = {
        attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_VERTEX_AI if vertex else attrs.PROVIDER_GEMINI
    }
    if base_url:
        host, port = _server(base_url)
        result[attrs.SERVER_ADDRESS] = host
        result[attrs.SERVER_PORT] = port
    return result


class _CallSite(NamedTuple):
    """What every request of one operation to one model through one endpoint shares."""

    span_name: str
    attributes: Mapping[str, AttributeValue]  # the request attributes that do not vary
    metric_points: MetricPoints


# Call sites kept per wrapped method (model × endpoint); past that the cache starts over.
_MAX_CALL_SITES = 128


class SpanWrappers:
    """wrapt wrappers around one SDK function; sync and async differ only in the call."""

    # A billed request checks the budget guard before it starts (it raises only with
    # enforcement on and the request's scope exhausted; otherwise one truth test).
    _guarded = False

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        raise NotImplementedError

    def _complete(self, invocation: Invocation, result: Any) -> Any:
        invocation.complete(result)
        return result

    # The span is current only while the SDK works (so HTTP spans nest under it) and is
    # detached before it is finalised, so metrics are recorded in the caller's context. Plain
    # attach/detach rather than ``with invocation.activate()``: this runs on every call.
    def sync(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        if self._guarded:
            check_request(kwargs.get("model"))
        invocation = self._start(instance, args, kwargs)
        if invocation is None:
            return wrapped(*args, **kwargs)
        token = invocation.attach()
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            otel_context.detach(token)
            invocation.fail(error)
            raise
        otel_context.detach(token)
        return self._complete(invocation, result)

    async def async_(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
    ) -> Any:
        if self._guarded:
            check_request(kwargs.get("model"))
        invocation = self._start(instance, args, kwargs)
        if invocation is None:
            return await wrapped(*args, **kwargs)
        token = invocation.attach()
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            otel_context.detach(token)
            invocation.fail(error)
            raise
        otel_context.detach(token)
        return self._complete(invocation, result)


class CallWrappers(SpanWrappers):
    """Wrappers for one :class:`Operation` on ``Models`` / ``AsyncModels``."""

    def __init__(self, operation: Operation, instruments: Instruments) -> None:
        self._operation = operation
        self._instruments = instruments
        self._call_info = CALL_INFO[operation.owner]
        self._call_config = CALL_CONFIG[operation.owner]
        # The requests that bill (the AFC parent's are checked each, below it).
        self._guarded = (
            operation.owner == "models"
            and not operation.afc_parent
            and operation.observation_type != "span"
        )
        # Span name, fixed attributes and metric points, built once per call site: an app
        # calls the same few models through the same client over and over.
        self._call_sites: dict[tuple[str, bool, str | None], _CallSite] = {}

    def _call_site(self, call: Call) -> _CallSite:
        client = call.api_client
        vertex = bool(getattr(client, "vertexai", False))
        base_url = getattr(getattr(client, "_http_options", None), "base_url", None)
        key = (call.model, vertex, str(base_url) if base_url else None)
        site = self._call_sites.get(key)
        if site is None:
            operation = self._operation
            model = bare_model_name(call.model)
            attributes = provider_attributes(vertex, key[2])
            attributes[attrs.GEN_AI_OPERATION_NAME] = operation.operation
            attributes[attrs.GEN_AI_REQUEST_MODEL] = model
            if operation.observation_type:
                attributes[attrs.LANGFUSE_OBSERVATION_TYPE] = operation.observation_type
            site = _CallSite(f"{operation.operation} {model}", attributes, MetricPoints(attributes))
            if len(self._call_sites) >= _MAX_CALL_SITES:
                self._call_sites.clear()
            self._call_sites[key] = site
        return site

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        operation = self._operation
        try:
            if operation.afc_parent and (
                not afc_active(self._call_config(instance, args, kwargs))
                or otel_context.get_value(_AFC_PARENT_OPEN)
            ):
                return None
            if not is_instrumentation_enabled():
                return None
            call = self._call_info(instance, args, kwargs)
            site = self._call_site(call)
            attributes = dict(site.attributes)
            if operation.request is not None:
                attributes.update(operation.request(call, self._instruments.settings))
            return Invocation(
                self._instruments,
                site.span_name,
                attributes,
                operation.recorder(self._instruments.settings),
                context_key=_AFC_PARENT_OPEN if operation.afc_parent else None,
                metric_points=site.metric_points,
            )
        except Exception as error:
            report_internal_error(f"start {operation.method}", error)
            return None

    def _complete(self, invocation: Invocation, result: Any) -> Any:
        if self._operation.streaming:
            return InstrumentedStream(result, invocation)
        invocation.complete(result)
        return result


class ToolWrappers(SpanWrappers):
    """``execute_tool {name}`` spans around AFC's function invocations."""

    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        if not is_instrumentation_enabled():
            return None
        try:
            call_args = args[0] if args else kwargs.get("args")
            function = args[1] if len(args) > 1 else kwargs.get("function_to_invoke")
            name = getattr(function, "__name__", None) or "tool"
            return start_tool_invocation(self._instruments, name, call_args)
        except Exception as error:
            report_internal_error("start execute_tool", error)
            return None


def is_async(function: Any) -> bool:
    """Whether the SDK method is a coroutine function (AsyncModels) rather than sync.

    Looks through decorators (``functools.wraps``): google-genai 1.55 to 2.8 check the
    arguments of ``AsyncInteractionsResource.create`` in a plain function around it."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        inspect.unwrap(function)
    )
