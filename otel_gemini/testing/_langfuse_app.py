"""The fake Langfuse's HTTP routes (Starlette), enforcing the ingestion contract."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import time
import zlib

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from otel_gemini.testing._langfuse_otlp import (
    BadRequest,
    has_attribute,
    parse_json,
    parse_protobuf,
    validate_ids,
)
from otel_gemini.testing._langfuse_state import LangfuseState, ReceivedRequest

TRACES_PATH = "/api/public/otel/v1/traces"
HEALTH_PATH = "/api/public/health"
PROJECTS_PATH = "/api/public/projects"
MAX_INGESTION_VERSION = 4
FAKE_VERSION = "3.0.0-fake"
FAKE_PROJECT = {"id": "fake-project", "name": "Fake project"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=headers)


def _credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    public, separator, secret = decoded.partition(":")
    return (public, secret) if separator else None


class LangfuseRoutes:
    """Request handlers over a :class:`LangfuseState`."""

    def __init__(self, state: LangfuseState) -> None:
        self.state = state

    def _auth_error(self, request: Request) -> JSONResponse | None:
        credentials = _credentials(request)
        state = self.state
        if credentials is None:
            return _error(401, "Unauthorized: missing or malformed Basic authorization")
        public, secret = credentials
        if state.forbidden_keys.get(public) == secret:
            return _error(403, "Forbidden: organization keys cannot ingest into a project")
        if (public, secret) != (state.public_key, state.secret_key):
            return _error(401, "Unauthorized: invalid public key or secret key")
        if state.suspended:
            return _error(403, "Forbidden: ingestion is suspended for this project")
        return None

    async def _apply_mode(self) -> Response | None:
        mode = self.state.current_mode()
        if mode.name == "hang":
            await self.state.hang()
            return _error(503, "released from a hang")
        if mode.name == "slow":
            await asyncio.sleep(mode.delay)
        if mode.name == "status":
            headers = {"Retry-After": mode.retry_after} if mode.retry_after is not None else None
            return _error(mode.status, f"fake Langfuse answering {mode.status}", headers)
        return None

    async def traces(self, request: Request) -> Response:
        body = await request.body()
        headers = {
            key: ("<withheld>" if key == "authorization" else value)
            for key, value in request.headers.items()
        }
        content_type = request.headers.get("content-type", "")
        encoding = request.headers.get("content-encoding", "")
        version = request.headers.get("x-langfuse-ingestion-version")

        def record(status: int, count: int = 0, error: str | None = None) -> None:
            self.state.record(
                ReceivedRequest(
                    path=request.url.path,
                    status=status,
                    content_type=content_type,
                    content_encoding=encoding,
                    ingestion_version=version,
                    body_bytes=len(body),
                    span_count=count,
                    headers=headers,
                    received_at=time.time(),
                    error=error,
                ),
                accepted if status == 200 else None,
            )

        accepted: ExportTraceServiceRequest | None = None
        answer = await self._apply_mode()
        if answer is None:
            answer = self._auth_error(request)
        if answer is not None:
            record(answer.status_code, error=bytes(answer.body).decode())
            return answer
        try:
            accepted = self._decode(body, content_type, encoding, version)
            count = validate_ids(accepted)
            for key, value in list(self.state.reject_rules):
                if has_attribute(accepted, key, value):
                    raise BadRequest(f"span attribute {key!r} is not accepted")
        except BadRequest as error:
            accepted = None
            record(400, error=str(error))
            return _error(400, str(error))
        record(200, count)
        return JSONResponse({}, status_code=200)

    @staticmethod
    def _decode(
        body: bytes, content_type: str, encoding: str, version: str | None
    ) -> ExportTraceServiceRequest:
        if version is not None:
            if not version.strip().isdigit():
                raise BadRequest("x-langfuse-ingestion-version must be an integer")
            if int(version) > MAX_INGESTION_VERSION:
                raise BadRequest(f"unsupported x-langfuse-ingestion-version {version}")
        if encoding.strip().lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as error:
                raise BadRequest(f"malformed gzip body: {error}") from error
        elif encoding.strip().lower() not in ("", "identity"):
            raise BadRequest(f"unsupported content encoding {encoding!r} (only gzip)")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type == "application/x-protobuf":
            return parse_protobuf(body)
        if media_type == "application/json":
            return parse_json(body)
        raise BadRequest(f"unsupported content type {content_type!r}")

    async def health(self, request: Request) -> Response:
        mode = self.state.current_mode()
        if mode.name == "status" and mode.status >= 500:
            return JSONResponse({"status": "ERROR", "version": FAKE_VERSION}, status_code=503)
        return JSONResponse({"status": "OK", "version": FAKE_VERSION})

    async def projects(self, request: Request) -> Response:
        answer = self._auth_error(request)
        if answer is not None:
            return answer
        return JSONResponse({"data": [FAKE_PROJECT]})


def build_app(state: LangfuseState, extra_routes: list[BaseRoute]) -> Starlette:
    routes = LangfuseRoutes(state)
    return Starlette(
        routes=[
            Route(TRACES_PATH, routes.traces, methods=["POST"]),
            Route(HEALTH_PATH, routes.health, methods=["GET"]),
            Route(PROJECTS_PATH, routes.projects, methods=["GET"]),
            *extra_routes,
        ]
    )
