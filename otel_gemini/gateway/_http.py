"""OTLP/HTTP trace receiver (``POST /v1/traces``): protobuf or JSON, plain or gzip.

Answers as the OTLP/HTTP specification asks: 200 with an ``ExportTraceServiceResponse`` in
the request's encoding; 400 with a ``google.rpc.Status`` message for a malformed body; 415
for another content type; 413 for a body over the limit; 429 (spool or memory budget full)
and 503 (spool unwritable, shutting down) with ``Retry-After``, which OTLP exporters and the
Collector's ``otlp_http`` exporter honour.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Final

from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from otel_gemini._listen_security import liveness_endpoint
from otel_gemini.gateway._intake import IntakeResult, SpanIntake, Verdict
from otel_gemini.gateway._otlp_decode import MalformedPayload, parse_json, parse_protobuf
from otel_gemini.health import HealthReport, health_route

TRACES_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"

_STATUS_BY_VERDICT: Final = {
    Verdict.ACCEPTED: 200,
    Verdict.MALFORMED: 400,
    Verdict.TOO_LARGE: 413,
    Verdict.BUSY: 429,
    Verdict.UNAVAILABLE: 503,
}
_EMPTY_RESPONSE: Final = ExportTraceServiceResponse().SerializeToString()


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    pass


def build_http_app(intake: SpanIntake, health: Callable[[], HealthReport]) -> Starlette:
    """The gateway's ASGI app: the OTLP trace receiver, the health endpoint and the
    liveness one.

    ``health`` gives the report served at ``GET /api/observability/health``, in the same
    JSON and with the same status codes as every other otel-gemini health endpoint.
    """

    async def traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in (PROTOBUF, JSON):
            outcome = intake.malformed(
                f"unsupported content type {content_type or '(none)'!r}; send {PROTOBUF} or {JSON}"
            )
            return _answer(outcome, JSON, status=415)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("gzip", "identity", ""):
            outcome = intake.malformed(f"unsupported content encoding {encoding!r}; use gzip")
            return _answer(outcome, content_type, status=415)
        is_json = content_type == JSON  # decodes into more memory: a larger reservation
        try:
            body = await _read_body(request, intake, json=is_json)
            if encoding == "gzip":
                body = _gunzip(body, intake.max_request_bytes)
        except _TooLarge:
            return _answer(intake.too_large(), content_type, close=True)
        except _Busy:
            busy = intake.busy("too many request bytes in progress; retry later")
            return _answer(busy, content_type, close=True)
        except ClientDisconnect:
            # Gone (or closed by the body timeout): nobody to answer, but counted.
            intake.aborted()
            return Response(status_code=400, headers={"Connection": "close"})
        except zlib.error as error:
            return _answer(intake.malformed(f"body is not valid gzip: {error}"), content_type)

        refused = intake.admit(len(body), json=is_json)
        if refused is not None:
            return _answer(refused, content_type)
        try:
            outcome = await run_in_threadpool(_decode_and_process, intake, body, content_type)
        finally:
            intake.release(len(body), json=is_json)
        return _answer(outcome, content_type)

    return Starlette(
        routes=[
            Route(TRACES_PATH, traces, methods=["POST"]),
            health_route(health),
            liveness_endpoint(),
        ]
    )


def _decode_and_process(intake: SpanIntake, body: bytes, content_type: str) -> IntakeResult:
    try:
        request: ExportTraceServiceRequest = (
            parse_protobuf(body) if content_type == PROTOBUF else parse_json(body)
        )
    except MalformedPayload as error:
        return intake.malformed(str(error))
    return intake.process(request)


async def _read_body(request: Request, intake: SpanIntake, *, json: bool) -> bytes:
    """The whole body, counted in the in-flight budget as it arrives (so bodies that stall
    half-sent are visible in health and bounded: past the budget, ``_Busy``).

    Each chunk takes what it may become once decoded, as :meth:`SpanIntake.admit` reserves
    for a whole body: the budget (at least 12 requests' raw size) then bounds the memory of
    stalled bodies too, rather than letting raw bytes fill all of it."""
    limit = intake.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            if size + len(chunk) > limit:
                raise _TooLarge
            if not intake.budget.try_take(intake.reservation(len(chunk), json=json)):
                raise _Busy
            size += len(chunk)
            chunks.append(chunk)
    finally:
        # What was taken above goes back; admit() then reserves the whole body's decoded
        # share again (after gunzip, at its real size).
        intake.release(size, json=json)
    return b"".join(chunks)


def _gunzip(body: bytes, limit: int) -> bytes:
    # Bounded: a small gzip bomb must not become gigabytes in memory.
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = decompressor.decompress(body, limit + 1)
    if len(data) > limit or decompressor.unconsumed_tail:
        raise _TooLarge
    data += decompressor.flush()
    if len(data) > limit:
        raise _TooLarge
    if not decompressor.eof:
        raise zlib.error("truncated gzip stream")
    return data


def _answer(
    outcome: IntakeResult, content_type: str, status: int | None = None, *, close: bool = False
) -> Response:
    code = status if status is not None else _STATUS_BY_VERDICT[outcome.verdict]
    headers: dict[str, str] = {}
    if close:
        # Answered before the body was read to its end: the rest is not wanted.
        headers["Connection"] = "close"
    if outcome.retry_after:
        headers["Retry-After"] = str(max(1, math.ceil(outcome.retry_after)))
    if code == 200:
        if content_type == JSON:
            return Response(b"{}", 200, media_type=JSON)
        return Response(_EMPTY_RESPONSE, 200, media_type=PROTOBUF)
    if content_type == JSON:
        return JSONResponse({"code": code, "message": outcome.message}, code, headers=headers)
    status_message = status_pb2.Status(code=_grpc_code(code), message=outcome.message)
    return Response(status_message.SerializeToString(), code, headers=headers, media_type=PROTOBUF)


def _grpc_code(http_status: int) -> int:
    # google.rpc.Code values matching the HTTP answer.
    return {400: 3, 413: 3, 415: 3, 429: 8, 503: 14}.get(http_status, 2)
