"""Fakes of Gemini and Langfuse servers for tests, ours and users'.

They need the ``testing`` extra (``pip install 'otel-gemini[testing]'``); the names load on
first use, so this package (and the pytest plugin in it, which every pytest run in an
environment with otel-gemini loads) imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otel_gemini._lazy import lazy_exports

if TYPE_CHECKING:
    from otel_gemini.testing.fake_gemini import (
        BatchReply,
        ClientEvent,
        CloseConnection,
        DropConnection,
        EmbedReply,
        ErrorReply,
        FakeGemini,
        GenerateReply,
        GenerationComplete,
        InputTranscription,
        InteractionReply,
        Interrupted,
        JsonReply,
        LiveRawMessage,
        LiveScript,
        LiveStep,
        LiveUsage,
        ModelAudio,
        ModelText,
        OutputTranscription,
        RawReply,
        RecordedLiveSession,
        RecordedRequest,
        ScriptedReply,
        ScriptedUsage,
        StreamReply,
        ToolCall,
        ToolCallCancellation,
        TurnComplete,
        WaitFor,
        error_reply,
        estimate_tokens,
        fake_credentials,
        function_call_reply,
        live_client_takes_ssl_context,
        malformed_reply,
        stream_reply,
        text_reply,
    )
    from otel_gemini.testing.fake_langfuse import (
        FakeLangfuse,
        MappedObservation,
        MappedTrace,
        ReceivedRequest,
        ReceivedSpan,
    )

__all__ = [
    "BatchReply",
    "ClientEvent",
    "CloseConnection",
    "DropConnection",
    "EmbedReply",
    "ErrorReply",
    "FakeGemini",
    "FakeLangfuse",
    "GenerateReply",
    "GenerationComplete",
    "InputTranscription",
    "InteractionReply",
    "Interrupted",
    "JsonReply",
    "LiveRawMessage",
    "LiveScript",
    "LiveStep",
    "LiveUsage",
    "MappedObservation",
    "MappedTrace",
    "ModelAudio",
    "ModelText",
    "OutputTranscription",
    "RawReply",
    "ReceivedRequest",
    "ReceivedSpan",
    "RecordedLiveSession",
    "RecordedRequest",
    "ScriptedReply",
    "ScriptedUsage",
    "StreamReply",
    "ToolCall",
    "ToolCallCancellation",
    "TurnComplete",
    "WaitFor",
    "error_reply",
    "estimate_tokens",
    "fake_credentials",
    "function_call_reply",
    "live_client_takes_ssl_context",
    "malformed_reply",
    "stream_reply",
    "text_reply",
]

_FAKE_LANGFUSE_NAMES = frozenset(
    {"FakeLangfuse", "MappedObservation", "MappedTrace", "ReceivedRequest", "ReceivedSpan"}
)
_FAKE_GEMINI_NAMES = frozenset(__all__) - _FAKE_LANGFUSE_NAMES

_from_fake_gemini = lazy_exports(
    __name__, "otel_gemini.testing.fake_gemini", _FAKE_GEMINI_NAMES, globals(), extra="testing"
)
_from_fake_langfuse = lazy_exports(
    __name__, "otel_gemini.testing.fake_langfuse", _FAKE_LANGFUSE_NAMES, globals(), extra="testing"
)


def __getattr__(name: str) -> Any:
    if name in _FAKE_LANGFUSE_NAMES:
        return _from_fake_langfuse(name)
    return _from_fake_gemini(name)
