"""Scripted replies of the fake Gemini server and the builders that make them.

A reply knows which rpcs it can answer and renders itself as an HTTP response for one request.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_gemini.testing._gemini_requests import RecordedRequest
from otel_gemini.testing._gemini_usage import ScriptedUsage

UsageOn = Literal["every", "last"]
"""Which stream chunks carry ``usageMetadata``."""
MalformedKind = Literal["invalid_json", "wrong_shape", "empty"]
"""The broken bodies :func:`malformed_reply` can send."""

GENERATE_RPCS = frozenset({"generateContent", "streamGenerateContent"})
EMBED_RPCS = frozenset({"embedContent", "batchEmbedContents", "predict"})

_STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class HttpReply:
    """A rendered HTTP response; ``abort`` drops the connection after the body chunks."""

    status: int
    headers: tuple[tuple[str, str], ...]
    chunks: tuple[bytes, ...]
    abort: bool = False

    @classmethod
    def json(
        cls, body: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> HttpReply:
        rendered = (("content-type", "application/json; charset=UTF-8"), *(headers or {}).items())
        return cls(status, tuple(rendered), (json.dumps(body).encode(),))


def sse_event(body: Any) -> bytes:
    """One server-sent event the way Gemini frames a stream chunk."""
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\r\n\r\n"


def sse_reply(events: Sequence[Any], abort: bool = False) -> HttpReply:
    headers = (("content-type", "text/event-stream"),)
    return HttpReply(200, headers, tuple(sse_event(event) for event in events), abort)


def google_error_body(code: int, message: str, status: str | None = None) -> dict[str, Any]:
    """Google's error JSON: ``{"error": {"code", "message", "status"}}``."""
    return {"error": {"code": code, "message": message, "status": status or status_for_code(code)}}


def status_for_code(code: int) -> str:
    """The canonical Google RPC status name for an HTTP status code."""
    return _STATUS_BY_CODE.get(code, "UNKNOWN")


def response_id_for(request: RecordedRequest) -> str:
    """The ``responseId`` the fake gives a reply that does not set one."""
    return f"fake-response-{request.sequence}"


def with_response_defaults(body: Mapping[str, Any], request: RecordedRequest) -> dict[str, Any]:
    """``body`` with ``modelVersion`` (the requested model) and ``responseId`` filled in when
    missing, as Gemini always sends both."""
    filled = dict(body)
    if "modelVersion" not in filled and request.model is not None:
        filled["modelVersion"] = request.model
    filled.setdefault("responseId", response_id_for(request))
    return filled


class ScriptedReply(ABC):
    """A queued answer to one request. ``rpcs`` (``None``: any) are the rpcs it answers."""

    rpcs: frozenset[str] | None = None

    def answers(self, request: RecordedRequest) -> bool:
        """Whether this reply fits the request (its rpc)."""
        return self.rpcs is None or request.rpc in self.rpcs

    @abstractmethod
    def render(self, request: RecordedRequest) -> HttpReply:
        """The HTTP response for ``request``."""


@dataclass(frozen=True)
class GenerateReply(ScriptedReply):
    """One ``GenerateContentResponse`` JSON body.

    Answers ``generateContent`` with the body, and ``streamGenerateContent`` with a one-chunk
    stream of it. A missing ``modelVersion`` / ``responseId`` is filled in (the requested model;
    ``fake-response-{n}``); use :class:`JsonReply` for a body sent exactly as given.
    """

    body: Mapping[str, Any]
    rpcs: frozenset[str] | None = GENERATE_RPCS

    def render(self, request: RecordedRequest) -> HttpReply:
        body = with_response_defaults(self.body, request)
        if request.rpc == "streamGenerateContent":
            return sse_reply([body])
        return HttpReply.json(body)


@dataclass(frozen=True)
class StreamReply(ScriptedReply):
    """A ``streamGenerateContent`` answer: one SSE event per chunk body.

    ``abort_after`` drops the connection after that many chunks, as a broken network would.
    ``error_after`` ends the stream after that many chunks with an in-band error event
    ``{"error": {...}}`` (status ``error_code``), as Gemini reports a failure mid-stream.
    Missing ``modelVersion`` / ``responseId`` are filled in as for :class:`GenerateReply`.
    """

    chunks: Sequence[Mapping[str, Any]]
    abort_after: int | None = None
    error_after: int | None = None
    error_code: int = 500
    rpcs: frozenset[str] | None = frozenset({"streamGenerateContent"})

    def render(self, request: RecordedRequest) -> HttpReply:
        events: list[Any] = [with_response_defaults(chunk, request) for chunk in self.chunks]
        if self.error_after is not None:
            error = google_error_body(self.error_code, "fake error in the middle of the stream")
            events = [*events[: self.error_after], error]
        if self.abort_after is not None:
            return sse_reply(events[: self.abort_after], abort=True)
        return sse_reply(events)


@dataclass(frozen=True)
class ErrorReply(ScriptedReply):
    """A Google API error: status ``code`` with ``{"error": {code, message, status}}``.

    ``retry_after`` (seconds) adds a ``Retry-After`` header. Answers any rpc.
    """

    code: int
    message: str = "fake error"
    status: str | None = None
    retry_after: int | None = None
    rpcs: frozenset[str] | None = None

    def render(self, request: RecordedRequest) -> HttpReply:
        headers = {} if self.retry_after is None else {"retry-after": str(self.retry_after)}
        body = google_error_body(self.code, self.message, self.status)
        return HttpReply.json(body, status=self.code, headers=headers)


@dataclass(frozen=True)
class RawReply(ScriptedReply):
    """Exactly these bytes, e.g. a malformed body for robustness tests. Answers any rpc."""

    body: bytes
    status: int = 200
    content_type: str = "application/json; charset=UTF-8"
    rpcs: frozenset[str] | None = None

    def render(self, request: RecordedRequest) -> HttpReply:
        return HttpReply(self.status, (("content-type", self.content_type),), (self.body,))


@dataclass(frozen=True)
class JsonReply(ScriptedReply):
    """Any JSON body with a status; answers the given ``rpcs`` (``None``: any)."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    rpcs: frozenset[str] | None = None

    def render(self, request: RecordedRequest) -> HttpReply:
        return HttpReply.json(self.body, status=self.status, headers=self.headers)


@dataclass(frozen=True)
class EmbedReply(ScriptedReply):
    """Embedding vectors, rendered for whichever embedding rpc the client used.

    ``batchEmbedContents`` (Gemini API), ``embedContent`` and ``predict`` (Vertex AI text
    embedding models) each get their own response shape. ``usage`` adds ``usageMetadata``
    (not to ``predict``); ``token_counts`` fills Vertex ``predict`` statistics.
    """

    vectors: Sequence[Sequence[float]]
    usage: ScriptedUsage | None = None
    token_counts: Sequence[int] | None = None
    rpcs: frozenset[str] | None = EMBED_RPCS

    def answers(self, request: RecordedRequest) -> bool:
        if request.rpc == "predict":
            return is_embedding_predict(request)
        return super().answers(request)

    def render(self, request: RecordedRequest) -> HttpReply:
        vectors = [list(vector) for vector in self.vectors]
        if request.rpc == "embedContent":
            body: dict[str, Any] = {"embedding": {"values": vectors[0] if vectors else []}}
            if self.usage is not None:
                body["usageMetadata"] = self.usage.to_json()
            return HttpReply.json(body)
        if request.rpc == "predict":
            counts = list(self.token_counts or [len(vector) for vector in vectors])
            predictions = [
                {
                    "embeddings": {
                        "values": vector,
                        "statistics": {"token_count": count, "truncated": False},
                    }
                }
                for vector, count in zip(vectors, counts, strict=False)
            ]
            return HttpReply.json(
                {"predictions": predictions, "metadata": {"billableCharacterCount": sum(counts)}}
            )
        batch: dict[str, Any] = {"embeddings": [{"values": vector} for vector in vectors]}
        if self.usage is not None:
            batch["usageMetadata"] = self.usage.to_json()
        return HttpReply.json(batch)


def is_embedding_predict(request: RecordedRequest) -> bool:
    """Vertex ``predict`` serves both embeddings (``content``) and Imagen (``prompt``)."""
    body = request.json if isinstance(request.json, dict) else {}
    instances = body.get("instances")
    return isinstance(instances, list) and bool(instances) and "content" in instances[0]


def candidate(
    parts: Sequence[Mapping[str, Any]], finish_reason: str | None, index: int = 0
) -> dict[str, Any]:
    """One ``candidates[]`` entry with a model-role content."""
    rendered: dict[str, Any] = {"content": {"role": "model", "parts": list(parts)}}
    if finish_reason is not None:
        rendered["finishReason"] = finish_reason
    rendered["index"] = index
    return rendered


def generate_body(
    parts: Sequence[Mapping[str, Any]],
    *,
    usage: ScriptedUsage | None,
    finish_reason: str | None,
    response_id: str | None,
    model_version: str | None,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` JSON body with one candidate."""
    body: dict[str, Any] = {"candidates": [candidate(parts, finish_reason)]}
    if usage is not None:
        body["usageMetadata"] = usage.to_json()
    if model_version is not None:
        body["modelVersion"] = model_version
    if response_id is not None:
        body["responseId"] = response_id
    return body


def text_reply(
    text: str,
    *,
    usage: ScriptedUsage | None = None,
    finish_reason: str = "STOP",
    response_id: str | None = None,
    model_version: str | None = None,
    thought: str | None = None,
) -> GenerateReply:
    """A text answer; ``thought`` adds a thought-summary part before the text."""
    parts: list[dict[str, Any]] = []
    if thought is not None:
        parts.append({"text": thought, "thought": True})
    parts.append({"text": text})
    return _reply(parts, usage, finish_reason, response_id, model_version)


def function_call_reply(
    *calls: tuple[str, Mapping[str, Any]],
    usage: ScriptedUsage | None = None,
    finish_reason: str = "STOP",
    response_id: str | None = None,
    model_version: str | None = None,
) -> GenerateReply:
    """An answer asking to call functions: one ``functionCall`` part per ``(name, args)``."""
    parts = [{"functionCall": {"name": name, "args": dict(args)}} for name, args in calls]
    return _reply(parts, usage, finish_reason, response_id, model_version)


def _reply(
    parts: list[dict[str, Any]],
    usage: ScriptedUsage | None,
    finish_reason: str,
    response_id: str | None,
    model_version: str | None,
) -> GenerateReply:
    body = generate_body(
        parts,
        usage=usage,
        finish_reason=finish_reason,
        response_id=response_id,
        model_version=model_version,
    )
    return GenerateReply(body)


def stream_reply(
    texts: Sequence[str],
    *,
    usage: ScriptedUsage | None = None,
    usage_on: UsageOn = "every",
    chunk_usages: Sequence[ScriptedUsage | None] | None = None,
    finish_reason: str = "STOP",
    response_id: str | None = None,
    model_version: str | None = None,
    abort_after: int | None = None,
    error_after: int | None = None,
    error_code: int = 500,
) -> StreamReply:
    """A stream of one chunk per text.

    ``usage`` is the request's final usage. With ``usage_on="every"`` each chunk carries the
    running total as Gemini sends it (prompt-side counts from the first chunk, candidates
    growing in proportion to the chunks so far, the exact ``usage`` on the last); with
    ``usage_on="last"`` only the last chunk has usage. ``chunk_usages`` sets each chunk's usage
    explicitly instead. ``finishReason`` is on the last chunk only. ``abort_after`` and
    ``error_after`` break the stream (see :class:`StreamReply`).
    """
    if usage_on not in ("every", "last"):
        raise ValueError(f"usage_on must be 'every' or 'last', not {usage_on!r}")
    if chunk_usages is not None and len(chunk_usages) != len(texts):
        raise ValueError("chunk_usages needs one entry per text")
    count = len(texts)
    chunks: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        last = index == count - 1
        chunk_usage: ScriptedUsage | None
        if chunk_usages is not None:
            chunk_usage = chunk_usages[index]
        elif usage is None or last:
            chunk_usage = usage
        elif usage_on == "every":
            chunk_usage = usage.partial(usage.candidates * (index + 1) // count)
        else:
            chunk_usage = None
        chunks.append(
            generate_body(
                [{"text": text}],
                usage=chunk_usage,
                finish_reason=finish_reason if last else None,
                response_id=response_id,
                model_version=model_version,
            )
        )
    return StreamReply(
        chunks, abort_after=abort_after, error_after=error_after, error_code=error_code
    )


def error_reply(
    code: int,
    message: str | None = None,
    *,
    status: str | None = None,
    retry_after: int | None = None,
) -> ErrorReply:
    """A Google API error reply; ``status`` defaults to the canonical name for ``code``."""
    return ErrorReply(
        code=code,
        message=message or f"fake {status or status_for_code(code)}",
        status=status,
        retry_after=retry_after,
    )


MALFORMED_BODIES: Mapping[str, bytes] = {
    "invalid_json": b'{"candidates": [{"content": {"parts": [{"text": "cut',
    "wrong_shape": b'{"candidates": "not a list", "usageMetadata": {"promptTokenCount": "many"}}',
    "empty": b"",
}


def malformed_reply(kind: MalformedKind = "invalid_json", *, status: int = 200) -> RawReply:
    """A broken body: ``invalid_json``, ``wrong_shape`` (valid JSON, wrong types) or ``empty``."""
    try:
        body = MALFORMED_BODIES[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {sorted(MALFORMED_BODIES)}, not {kind!r}") from None
    return RawReply(body, status=status)
