"""Decoding OTLP trace requests (protobuf or JSON) the way Langfuse's endpoint reads them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format  # type: ignore[import-untyped]
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

AttributeValue = str | bool | int | float | bytes | None | list[Any] | dict[str, Any]

_KIND_NAMES = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}
_STATUS_NAMES = {
    value: name.removeprefix("STATUS_CODE_") for name, value in Status.StatusCode.items()
}


class BadRequest(ValueError):
    """The body is not an OTLP trace request Langfuse would accept (HTTP 400)."""


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the fake Langfuse decoded it."""

    trace_id: str
    """32 lower-case hex digits."""
    span_id: str
    """16 lower-case hex digits."""
    parent_span_id: str | None
    name: str
    kind: str
    """``INTERNAL``, ``SERVER``, ``CLIENT``, ``PRODUCER``, ``CONSUMER`` or ``UNSPECIFIED``."""
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: dict[str, AttributeValue]
    resource: dict[str, AttributeValue] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    status_code: str = "UNSET"
    status_message: str = ""
    events: tuple[str, ...] = ()
    """Event names, in order."""
    event_attributes: tuple[dict[str, AttributeValue], ...] = ()
    """Each event's attributes, in the order of :attr:`events`."""

    @property
    def key(self) -> tuple[str, str]:
        """(trace id, span id): what Langfuse upserts on."""
        return (self.trace_id, self.span_id)


def any_value(value: AnyValue) -> AttributeValue:
    """An OTLP ``AnyValue`` as a plain Python value."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes(value.kvlist_value.values)
    result: AttributeValue = getattr(value, which)
    return result


def attributes(values: Any) -> dict[str, AttributeValue]:
    pairs: list[KeyValue] = list(values)
    return {pair.key: any_value(pair.value) for pair in pairs}


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise BadRequest(f"malformed OTLP protobuf: {error}") from error
    return request


def _hex_to_base64(container: dict[str, Any], *keys: str) -> None:
    for key in keys:
        value = container.get(key)
        if isinstance(value, str) and value:
            try:
                container[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError as error:
                raise BadRequest(f"{key} is not hex: {value!r}") from error


def parse_json(body: bytes) -> ExportTraceServiceRequest:
    """OTLP/JSON: ids are hex (not protobuf JSON's base64), enums may be numbers."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequest(f"malformed JSON: {error}") from error
    if not isinstance(document, dict):
        raise BadRequest("the JSON body must be an object")
    for resource_spans in document.get("resourceSpans") or []:
        for scope_spans in resource_spans.get("scopeSpans") or []:
            for span in scope_spans.get("spans") or []:
                _hex_to_base64(span, "traceId", "spanId", "parentSpanId")
                for link in span.get("links") or []:
                    _hex_to_base64(link, "traceId", "spanId")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise BadRequest(f"malformed OTLP JSON: {error}") from error
    return request


def validate_ids(request: ExportTraceServiceRequest) -> int:
    """Rejects the whole request if any span has a bad id (as Langfuse does); span count."""
    count = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                count += 1
                if len(span.trace_id) != 16 or not any(span.trace_id):
                    raise BadRequest("a span has an invalid trace id")
                if len(span.span_id) != 8 or not any(span.span_id):
                    raise BadRequest("a span has an invalid span id")
                if span.parent_span_id and len(span.parent_span_id) != 8:
                    raise BadRequest("a span has an invalid parent span id")
    return count


def has_attribute(request: ExportTraceServiceRequest, key: str, value: object) -> bool:
    """Whether any span carries attribute ``key`` (equal to ``value`` unless it is ...)."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                for pair in span.attributes:
                    if pair.key == key and (value is ... or any_value(pair.value) == value):
                        return True
    return False


def received_spans(request: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    spans: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        name=span.name,
                        kind=_KIND_NAMES.get(span.kind, str(span.kind)),
                        start_time_unix_nano=span.start_time_unix_nano,
                        end_time_unix_nano=span.end_time_unix_nano,
                        attributes=attributes(span.attributes),
                        resource=resource,
                        scope_name=scope.name,
                        scope_version=scope.version,
                        status_code=_STATUS_NAMES.get(span.status.code, str(span.status.code)),
                        status_message=span.status.message,
                        events=tuple(event.name for event in span.events),
                        event_attributes=tuple(
                            attributes(event.attributes) for event in span.events
                        ),
                    )
                )
    return spans
