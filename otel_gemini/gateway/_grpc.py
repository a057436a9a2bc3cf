"""OTLP/gRPC trace receiver (``opentelemetry.proto.collector.trace.v1.TraceService/Export``).

Refusals carry a ``google.rpc.Status`` with a ``RetryInfo`` detail: the Collector's OTLP
exporter retries RESOURCE_EXHAUSTED only when the server says when (and waits that long),
and always retries UNAVAILABLE. Malformed requests get INVALID_ARGUMENT (not retried).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent import futures
from typing import Any, Final

import grpc  # type: ignore[import-untyped]
from google.protobuf import any_pb2, duration_pb2  # type: ignore[import-untyped]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from otel_gemini.gateway._intake import IntakeResult, SpanIntake, Verdict
from otel_gemini.gateway._otlp_decode import MalformedPayload, parse_protobuf

_CODES: Final = {
    Verdict.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    Verdict.TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    Verdict.BUSY: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Verdict.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
_STATUS_DETAILS_KEY: Final = "grpc-status-details-bin"
_IDLE_MS: Final = 5 * 60 * 1000
_SERVICE: Final = "opentelemetry.proto.collector.trace.v1.TraceService"


class _RichStatus(grpc.Status):  # type: ignore[misc]
    """What ``ServicerContext.abort_with_status`` sends: code, message, details trailer."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple[Any, ...]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing


def _status_for(outcome: IntakeResult) -> _RichStatus:
    code = _CODES[outcome.verdict]
    status = status_pb2.Status(code=code.value[0], message=outcome.message)
    if outcome.retry_after:
        seconds = max(0.0, outcome.retry_after)
        whole = math.floor(seconds)
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))
        )
        detail = any_pb2.Any()
        detail.Pack(retry)
        status.details.append(detail)
    trailing = ((_STATUS_DETAILS_KEY, status.SerializeToString()),)
    return _RichStatus(code, outcome.message, trailing)


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    """``TraceService.Export`` backed by a :class:`SpanIntake`."""

    def __init__(self, intake: SpanIntake) -> None:
        self._intake = intake

    def Export(  # the gRPC method name
        self, message: bytes, context: grpc.ServicerContext
    ) -> ExportTraceServiceResponse:
        # The message's bytes, not yet decoded: admitted first, as on HTTP, so the in-flight
        # budget bounds what decoding takes. What gRPC holds before this is the raw messages
        # of the calls in progress: at most max_concurrent_rpcs x max_request_bytes.
        size = len(message)
        refused = self._intake.admit(size)
        if refused is not None:
            context.abort_with_status(_status_for(refused))
        try:
            try:
                request = parse_protobuf(message)
            except MalformedPayload as error:
                outcome = self._intake.malformed(str(error))
            else:
                outcome = self._intake.process(request)
        finally:
            self._intake.release(size)
        if outcome.verdict is not Verdict.ACCEPTED:
            context.abort_with_status(_status_for(outcome))
        return ExportTraceServiceResponse()


def build_grpc_server(
    intake: SpanIntake,
    address: str,
    *,
    workers: int,
    max_concurrent_rpcs: int,
    credentials: Any = None,
    interceptors: Sequence[Any] = (),
    handshake_timeout: float = 10.0,
) -> tuple[grpc.Server, int]:
    """A started-ready (not started) gRPC server bound to ``address``, and its port.

    ``credentials``: ``grpc.ServerCredentials`` for TLS (else plaintext); ``interceptors``:
    e.g. the bearer token check."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otel-gemini-grpc"),
        interceptors=list(interceptors),
        # Beyond this many calls at once gRPC itself answers RESOURCE_EXHAUSTED.
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", intake.max_request_bytes),
            ("grpc.so_reuseport", 0),
            # A connection that never completes its (TLS and HTTP/2) handshake is closed.
            ("grpc.server_handshake_timeout_ms", int(handshake_timeout * 1000)),
            # Channels are long-lived by design (the Collector keeps one open): idle ones
            # are closed only after minutes, so a flood of them cannot stay forever.
            ("grpc.max_connection_idle_ms", _IDLE_MS),
        ],
    )
    # TraceService/Export as generated, but handed the message undecoded (admitted first).
    export = grpc.unary_unary_rpc_method_handler(
        TraceServicer(intake).Export,
        request_deserializer=None,
        response_serializer=ExportTraceServiceResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE, {"Export": export}),)
    )
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen for OTLP/gRPC on {address}")
    return server, port
