"""OTLP trace requests (protobuf or JSON) → OTel SDK ``ReadableSpan`` objects.

The gateway runs received spans through the same ``CostSpanProcessor`` and exporter as an
in-process app, and those take SDK spans; so each OTLP span becomes a ``ReadableSpan`` with
the same ids, times, attributes, events, links, status, resource and scope. Attribute values
keep their OTLP shape (maps stay maps, byte strings stay bytes) so what is exported again is
what was received.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from otel_gemini._limits import quote

_KINDS: Final = {
    ProtoSpan.SPAN_KIND_UNSPECIFIED: SpanKind.INTERNAL,
    ProtoSpan.SPAN_KIND_INTERNAL: SpanKind.INTERNAL,
    ProtoSpan.SPAN_KIND_SERVER: SpanKind.SERVER,
    ProtoSpan.SPAN_KIND_CLIENT: SpanKind.CLIENT,
    ProtoSpan.SPAN_KIND_PRODUCER: SpanKind.PRODUCER,
    ProtoSpan.SPAN_KIND_CONSUMER: SpanKind.CONSUMER,
}
_STATUS_CODES: Final = {
    ProtoStatus.STATUS_CODE_UNSET: StatusCode.UNSET,
    ProtoStatus.STATUS_CODE_OK: StatusCode.OK,
    ProtoStatus.STATUS_CODE_ERROR: StatusCode.ERROR,
}
_UNSET_STATUS: Final = Status(StatusCode.UNSET)
# Received spans were sampled by their sender (unsampled spans are never exported).
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_FLAG_IS_REMOTE: Final = 0x200
_ID_FIELDS: Final = ("traceId", "spanId", "parentSpanId")
MAX_JSON_DEPTH: Final = 64
"""Nesting of an OTLP/JSON body (objects and arrays): a span's attributes sit at depth 8 and
each nested map value adds 4. Deeper is refused before parsing: the stdlib parser recurses
(RecursionError, a 500, near 1000 levels) and 100,000 levels cost memory for nothing."""
MAX_ATTRIBUTE_DEPTH: Final = 16
"""Nesting of one attribute value (maps and arrays in maps and arrays) a protobuf body may
carry; deeper is refused (converting it recurses once per level; protobuf itself stops
near 30, at its 100 message levels)."""
# A JSON string (escapes included), and a pair of brackets with no bracket inside.
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST: Final = re.compile(rb"[\[{][^\[\]{}]*[\]}]")
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")


class MalformedPayload(ValueError):
    """The request body is not a valid OTLP trace export request (the message says why)."""


# --- request bodies ----------------------------------------------------------------------------


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from its protobuf encoding."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise MalformedPayload(f"not an OTLP protobuf ExportTraceServiceRequest: {error}") from None
    return request


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """An ``ExportTraceServiceRequest`` from OTLP/JSON (hex trace and span ids, camelCase)."""
    check_json_depth(body)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedPayload(f"body is not JSON: {error}") from None
    except RecursionError:  # unreachable after the depth check; never a 500 if it were
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(document, dict):
        raise MalformedPayload("OTLP/JSON body must be an object with resourceSpans")
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise MalformedPayload(f"not an OTLP/JSON ExportTraceServiceRequest: {error}") from None
    except RecursionError:
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    return request


def check_json_depth(body: bytes) -> None:
    """Raises :class:`MalformedPayload` when ``body`` nests more than ``MAX_JSON_DEPTH`` levels.

    Strings are removed, then only brackets kept, then innermost pairs removed once per level
    (each pass one C-level regex over what is left): linear in the body for each level, and at
    most ``MAX_JSON_DEPTH`` passes. Unbalanced brackets are left to the parser to refuse."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        if not brackets:
            return
        brackets, removed = _INNERMOST.subn(b"", brackets)
        if not removed:
            return  # unbalanced: json.loads says where
    if brackets and _INNERMOST.search(brackets):
        raise MalformedPayload(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    # OTLP/JSON writes ids as hex; protobuf's JSON mapping of bytes fields is base64.
    for resource_spans in _objects(document.get("resourceSpans")):
        for scope_spans in _objects(resource_spans.get("scopeSpans")):
            for span in _objects(scope_spans.get("spans")):
                _convert_ids(span)
                for link in _objects(span.get("links")):
                    _convert_ids(link)


def _objects(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return (item for item in value if isinstance(item, dict))
    return ()


def _convert_ids(holder: dict[str, Any]) -> None:
    for field in _ID_FIELDS:
        value = holder.get(field)
        if isinstance(value, str) and value:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise MalformedPayload(f"{field} {quote(value)} is not hex") from None
            holder[field] = base64.b64encode(raw).decode("ascii")


# --- spans -------------------------------------------------------------------------------------


def count_spans(request: ExportTraceServiceRequest) -> int:
    """How many spans the request holds."""
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )


def to_readable_spans(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    """Every span of ``request`` as a ``ReadableSpan``.

    Raises :class:`MalformedPayload` if any span has an invalid trace or span id (Langfuse
    rejects a whole batch for one such span, so it is refused here, where the sender sees it).
    """
    spans: list[ReadableSpan] = []
    for resource_spans in request.resource_spans:
        resource = Resource(
            _attributes(resource_spans.resource.attributes), resource_spans.schema_url or None
        )
        for scope_spans in resource_spans.scope_spans:
            proto_scope = scope_spans.scope
            scope = InstrumentationScope(
                proto_scope.name,
                proto_scope.version or None,
                scope_spans.schema_url or None,
                _attributes(proto_scope.attributes) or None,
            )
            spans.extend(_span(span, resource, scope) for span in scope_spans.spans)
    return spans


def _span(span: ProtoSpan, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id = _trace_id(span.trace_id, "trace_id")
    context = SpanContext(
        trace_id,
        _span_id(span.span_id, "span_id"),
        is_remote=False,
        trace_flags=_SAMPLED,
        trace_state=_trace_state(span.trace_state),
    )
    parent = None
    if span.parent_span_id:
        parent = SpanContext(
            trace_id,
            _span_id(span.parent_span_id, "parent_span_id"),
            is_remote=bool(span.flags & _FLAG_IS_REMOTE),
            trace_flags=_SAMPLED,
        )
    status = _UNSET_STATUS
    if span.status.code or span.status.message:
        code = _STATUS_CODES.get(span.status.code, StatusCode.UNSET)
        # The SDK keeps a description only with ERROR.
        status = Status(code, span.status.message if code is StatusCode.ERROR else None)
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        events=tuple(
            Event(event.name, _attributes(event.attributes), event.time_unix_nano)
            for event in span.events
        ),
        links=tuple(_link(link) for link in span.links),
        kind=_KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def _link(link: ProtoSpan.Link) -> Link:
    context = SpanContext(
        _trace_id(link.trace_id, "link trace_id"),
        _span_id(link.span_id, "link span_id"),
        is_remote=bool(link.flags & _FLAG_IS_REMOTE),
        trace_flags=_SAMPLED,
        trace_state=_trace_state(link.trace_state),
    )
    return Link(context, _attributes(link.attributes))


def _trace_id(raw: bytes, field: str) -> int:
    if len(raw) != 16 or not any(raw):
        raise MalformedPayload(f"span with invalid {field} {_show(raw)} (need 16 non-zero bytes)")
    return int.from_bytes(raw, "big")


def _span_id(raw: bytes, field: str) -> int:
    if len(raw) != 8 or not any(raw):
        raise MalformedPayload(f"span with invalid {field} {_show(raw)} (need 8 non-zero bytes)")
    return int.from_bytes(raw, "big")


def _show(raw: bytes) -> str:
    return quote(raw)  # a prefix: the id may be megabytes of a hostile request


def _trace_state(text: str) -> TraceState | None:
    if not text:
        return None
    return TraceState.from_header([text])


def _attributes(pairs: Sequence[KeyValue], depth: int = 0) -> dict[str, Any]:
    return {pair.key: _value(pair.value, depth) for pair in pairs}


def _value(value: AnyValue, depth: int = 0) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value
    if which == "int_value":
        return value.int_value
    if which == "double_value":
        return value.double_value
    if which == "bool_value":
        return value.bool_value
    if which == "array_value" or which == "kvlist_value":
        if depth >= MAX_ATTRIBUTE_DEPTH:
            raise MalformedPayload(
                f"an attribute value nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"
            )
        if which == "array_value":
            return tuple(_value(item, depth + 1) for item in value.array_value.values)
        return _attributes(value.kvlist_value.values, depth + 1)
    if which == "bytes_value":
        return value.bytes_value
    return None
