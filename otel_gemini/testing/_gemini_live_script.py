"""Scripted Live API sessions: what the fake server sends, and which client messages it awaits.

A :class:`LiveScript` is a list of steps played in order once the client's ``setup`` message
has been answered with ``setupComplete``. Server steps send one message each (``ModelAudio``
with ``chunks=n`` sends n); :class:`WaitFor` reads client messages until one matches, so a
script and a real client stay in lock-step without timers. Messages are rendered as the
Gemini Developer API sends them (camelCase JSON).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_gemini.testing._gemini_usage import ScriptedUsage

ClientEvent = Literal[
    "audio",
    "audio_stream_end",
    "activity_start",
    "activity_end",
    "client_content",
    "turn_complete",
    "tool_response",
    "realtime_input",
    "any",
]
"""What :class:`WaitFor` waits for.

``audio``: a realtime audio chunk; ``audio_stream_end`` / ``activity_start`` /
``activity_end``: those realtime signals; ``client_content``: any ``clientContent``;
``turn_complete``: a ``clientContent`` with ``turnComplete: true``; ``tool_response``: a
``toolResponse``; ``realtime_input``: any realtime input; ``any``: any message.
"""

OUTPUT_AUDIO_RATE = 24_000
"""The Live API's output PCM rate (16-bit mono), as in ``audio/pcm;rate=24000``."""


def pcm_bytes(seconds: float, rate: int) -> int:
    """Bytes of 16-bit mono PCM for ``seconds`` at ``rate`` Hz (a whole number of samples)."""
    return round(seconds * rate) * 2


def _pcm_chunk(size: int) -> bytes:
    # A deterministic, non-silent pattern; any bytes do, but zeros would hide offset bugs.
    pattern = bytes(range(256))
    return (pattern * (size // 256 + 1))[:size]


# --- server steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelAudio:
    """``seconds`` of model speech as ``chunks`` ``serverContent.modelTurn`` messages
    (``inlineData``, ``audio/pcm;rate={rate}``). The samples are split as evenly as possible."""

    seconds: float
    chunks: int = 1
    rate: int = OUTPUT_AUDIO_RATE

    def messages(self) -> Iterator[dict[str, Any]]:
        samples = round(self.seconds * self.rate)
        base, extra = divmod(samples, self.chunks)
        mime_type = f"audio/pcm;rate={self.rate}"
        for index in range(self.chunks):
            size = (base + (1 if index < extra else 0)) * 2
            data = base64.b64encode(_pcm_chunk(size)).decode("ascii")
            part = {"inlineData": {"mimeType": mime_type, "data": data}}
            yield {"serverContent": {"modelTurn": {"parts": [part]}}}


@dataclass(frozen=True)
class ModelText:
    """A text part of the model's turn (``responseModalities=["TEXT"]``)."""

    text: str

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"serverContent": {"modelTurn": {"parts": [{"text": self.text}]}}}


@dataclass(frozen=True)
class InputTranscription:
    """The server's transcription of the user's speech (``inputTranscription``)."""

    text: str

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"serverContent": {"inputTranscription": {"text": self.text}}}


@dataclass(frozen=True)
class OutputTranscription:
    """The server's transcription of the model's speech (``outputTranscription``)."""

    text: str

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"serverContent": {"outputTranscription": {"text": self.text}}}


def live_usage_json(usage: ScriptedUsage) -> dict[str, Any]:
    """``usage`` as the Live API's ``usageMetadata``: the REST rendering with ``candidates``
    named ``responseTokenCount`` / ``responseTokensDetails``."""
    rendered = usage.to_json()
    renamed = {"candidatesTokenCount": "responseTokenCount"}
    renamed["candidatesTokensDetails"] = "responseTokensDetails"
    return {renamed.get(key, key): value for key, value in rendered.items()}


@dataclass(frozen=True)
class LiveUsage:
    """A ``usageMetadata`` message on its own (a repeat within a turn, or late usage).

    ``ScriptedUsage.candidates`` renders as ``responseTokenCount`` and
    ``candidates_by_modality`` as ``responseTokensDetails``."""

    usage: ScriptedUsage

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"usageMetadata": live_usage_json(self.usage)}


@dataclass(frozen=True)
class TurnComplete:
    """``serverContent.turnComplete``, with ``usageMetadata`` in the same message if given."""

    usage: ScriptedUsage | None = None

    def messages(self) -> Iterator[dict[str, Any]]:
        message: dict[str, Any] = {"serverContent": {"turnComplete": True}}
        if self.usage is not None:
            message["usageMetadata"] = live_usage_json(self.usage)
        yield message


@dataclass(frozen=True)
class Interrupted:
    """``serverContent.interrupted``: the user barged in and the model stopped speaking."""

    usage: ScriptedUsage | None = None

    def messages(self) -> Iterator[dict[str, Any]]:
        message: dict[str, Any] = {"serverContent": {"interrupted": True}}
        if self.usage is not None:
            message["usageMetadata"] = live_usage_json(self.usage)
        yield message


@dataclass(frozen=True)
class GenerationComplete:
    """``serverContent.generationComplete``: the model finished generating (before
    ``turnComplete``, which may follow after the audio was played out)."""

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"serverContent": {"generationComplete": True}}


@dataclass(frozen=True)
class ToolCall:
    """A ``toolCall`` with one function call; follow it with ``WaitFor("tool_response")``."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    call_id: str = "call-1"

    def messages(self) -> Iterator[dict[str, Any]]:
        call = {"id": self.call_id, "name": self.name, "args": dict(self.args)}
        yield {"toolCall": {"functionCalls": [call]}}


@dataclass(frozen=True)
class ToolCallCancellation:
    """``toolCallCancellation``: the model no longer wants these calls' results."""

    call_ids: Sequence[str]

    def messages(self) -> Iterator[dict[str, Any]]:
        yield {"toolCallCancellation": {"ids": list(self.call_ids)}}


@dataclass(frozen=True)
class LiveRawMessage:
    """Any JSON object, sent as is."""

    body: Mapping[str, Any]

    def messages(self) -> Iterator[dict[str, Any]]:
        yield dict(self.body)


@dataclass(frozen=True)
class DropConnection:
    """Drops the TCP connection without a WebSocket close frame (the client sees 1006)."""


@dataclass(frozen=True)
class CloseConnection:
    """Closes the WebSocket with ``code`` and ``reason`` (e.g. 1011 for a server error)."""

    code: int = 1000
    reason: str = ""


@dataclass(frozen=True)
class WaitFor:
    """Reads client messages until ``count`` of them match ``event`` (see :data:`ClientEvent`)."""

    event: ClientEvent
    count: int = 1


ServerMessages = (
    ModelAudio
    | ModelText
    | InputTranscription
    | OutputTranscription
    | LiveUsage
    | TurnComplete
    | Interrupted
    | GenerationComplete
    | ToolCall
    | ToolCallCancellation
    | LiveRawMessage
)
LiveStep = ServerMessages | DropConnection | CloseConnection | WaitFor


@dataclass(frozen=True)
class LiveScript:
    """One scripted Live session: ``steps`` played after ``setupComplete``.

    With ``model``, only a connection for that model (bare name) takes this script.
    ``session_id`` is sent in ``setupComplete`` (google-genai 3.x exposes it as
    ``session.session_id``). When the steps run out the server keeps reading (and recording)
    client messages until the client closes.

    Example, one voice turn::

        LiveScript([
            WaitFor("audio_stream_end"),
            InputTranscription("What's the weather?"),
            ModelAudio(seconds=2.0, chunks=4),
            TurnComplete(usage=ScriptedUsage(prompt=60, candidates=50,
                                             prompt_by_modality={"AUDIO": 60},
                                             candidates_by_modality={"AUDIO": 50})),
        ])
    """

    steps: Sequence[LiveStep]
    model: str | None = None
    session_id: str | None = "fake-live-session"


def client_events(message: Mapping[str, Any]) -> set[str]:
    """The :data:`ClientEvent` names one client message satisfies."""
    events = {"any"}
    realtime = _field(message, "realtimeInput", "realtime_input")
    if isinstance(realtime, Mapping):
        events.add("realtime_input")
        if _field(realtime, "audio") is not None or _field(realtime, "mediaChunks", "media_chunks"):
            events.add("audio")
        if _field(realtime, "audioStreamEnd", "audio_stream_end"):
            events.add("audio_stream_end")
        if _field(realtime, "activityStart", "activity_start") is not None:
            events.add("activity_start")
        if _field(realtime, "activityEnd", "activity_end") is not None:
            events.add("activity_end")
    content = _field(message, "clientContent", "client_content")
    if isinstance(content, Mapping):
        events.add("client_content")
        if _field(content, "turnComplete", "turn_complete"):
            events.add("turn_complete")
    if _field(message, "toolResponse", "tool_response") is not None:
        events.add("tool_response")
    return events


def client_audio_bytes(message: Mapping[str, Any]) -> int:
    """Bytes of audio (decoded) in one client message's realtime input."""
    realtime = _field(message, "realtimeInput", "realtime_input")
    if not isinstance(realtime, Mapping):
        return 0
    blobs = [_field(realtime, "audio")]
    chunks = _field(realtime, "mediaChunks", "media_chunks")
    if isinstance(chunks, list):
        blobs.extend(chunks)
    total = 0
    for blob in blobs:
        if not isinstance(blob, Mapping):
            continue
        mime = str(_field(blob, "mimeType", "mime_type") or "")
        data = _field(blob, "data")
        if mime.startswith("audio/") and isinstance(data, str):
            total += len(base64.b64decode(data))
    return total


def _field(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return None
