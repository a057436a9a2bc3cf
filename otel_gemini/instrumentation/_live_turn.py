"""One model turn of a Live session: a generation span with that turn's usage and audio.

A turn starts with its first input (or with the model's first output when the model speaks
unprompted) and is over at ``turn_complete`` or an interruption. Its span is finalised later,
once usage that arrives after the end can no longer be this turn's (see ``_live_session``),
and ends at the moment the turn was over.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini.instrumentation import _content
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._invocation import Invocation
from otel_gemini.instrumentation._live_audio import OUTPUT_RATE, AudioMeter
from otel_gemini.instrumentation._usage import usage_attributes

FINISH_STOP = "stop"
FINISH_INTERRUPTED = "interrupted"


class _Transcript:
    """Text gathered from many small messages, kept to at most ``limit`` characters."""

    __slots__ = ("_length", "_limit", "_pieces")

    def __init__(self, limit: int) -> None:
        self._pieces: list[str] = []
        self._length = 0
        self._limit = limit

    def add(self, text: str) -> None:
        if self._length < self._limit:
            self._pieces.append(text)
            self._length += len(text)

    def text(self) -> str:
        return "".join(self._pieces)

    def __bool__(self) -> bool:
        return self._length > 0


class LiveTurn:
    """The state of one turn; also the response recorder of its :class:`Invocation`."""

    __slots__ = (
        "_first_audio_at",
        "_first_output_wall",
        "_input_ended_at",
        "_input_parts",
        "_input_transcript",
        "_max_length",
        "_output_parts",
        "_output_text",
        "_output_transcript",
        "end_reason",
        "ended_at",
        "final_attributes",
        "finish_reason",
        "has_output",
        "index",
        "input_audio",
        "input_message",
        "interrupted",
        "invocation",
        "output_audio",
        "output_message",
        "started_at",
        "tool_calls",
        "usage",
    )

    def __init__(
        self,
        instruments: Instruments,
        model: str,
        index: int,
        attributes: dict[str, AttributeValue],
    ) -> None:
        settings = instruments.settings
        self.index = index
        self.started_at = time.perf_counter()
        self.usage: Any = None
        self.input_audio = AudioMeter()
        self.output_audio = AudioMeter()
        self.has_output = False
        self.interrupted = False
        self.finish_reason: str | None = None
        self.end_reason: str | None = None
        self.ended_at: float | None = None
        self.tool_calls = 0
        self.final_attributes: Mapping[str, AttributeValue] = {}
        # Content capture only: this turn's messages, for the session's input and output.
        self.input_message: dict[str, Any] | None = None
        self.output_message: dict[str, Any] | None = None
        self._input_ended_at: float | None = None
        self._first_audio_at: float | None = None
        self._first_output_wall: float | None = None
        capture = settings.capture_content
        self._max_length = settings.content_max_length
        self._input_parts: list[dict[str, Any]] | None = [] if capture else None
        self._output_parts: list[dict[str, Any]] | None = [] if capture else None
        self._input_transcript = _Transcript(self._max_length) if capture else None
        self._output_transcript = _Transcript(self._max_length) if capture else None
        self._output_text = _Transcript(self._max_length) if capture else None
        attributes[attrs.LIVE_TURN_INDEX] = index
        self.invocation = Invocation(
            instruments, f"{attrs.OP_GENERATE_CONTENT} {model}", attributes, self
        )

    # --- input ---

    def input_ended(self) -> None:
        """The client said its input is complete (end of audio, turn complete, tool result)."""
        self._input_ended_at = time.perf_counter()

    def add_input_part(self, part: dict[str, Any]) -> None:
        parts = self._input_parts
        if parts is not None and len(parts) < 64:
            parts.append(part)

    def add_input_transcript(self, text: str) -> None:
        if self._input_transcript is not None:
            self._input_transcript.add(text)

    # --- output ---

    def output_started(self) -> None:
        self.has_output = True
        self._first_output_wall = time.time()

    def add_model_part(self, part: Any) -> None:
        inline = part.inline_data
        if inline is not None:
            if self.output_audio.add_blob(inline, OUTPUT_RATE) and self._first_audio_at is None:
                self._first_audio_at = time.perf_counter()
            return
        text = part.text
        if text and self._output_text is not None and not part.thought:
            self._output_text.add(text)

    def add_output_transcript(self, text: str) -> None:
        if self._output_transcript is not None:
            self._output_transcript.add(text)

    def add_tool_call(self, call: Any) -> None:
        self.tool_calls += 1
        parts = self._output_parts
        if parts is not None and len(parts) < 64:
            parts.append(
                {"type": "tool_call", "id": call.id, "name": call.name, "arguments": call.args}
            )

    def complete(self, interrupted: bool) -> None:
        """The turn is over (``turn_complete`` or an interruption); finalised later."""
        self.ended_at = time.perf_counter()
        self.interrupted = interrupted
        self.finish_reason = FINISH_INTERRUPTED if interrupted else FINISH_STOP

    # --- ResponseRecorder ---

    def add(self, response: Any) -> None:
        return None

    def attributes(self) -> Mapping[str, AttributeValue]:
        result: dict[str, AttributeValue] = {}
        if self.usage is not None:
            result.update(usage_attributes(self.usage))
        # Always both: a per-minute price bills exactly what was streamed in this turn (0.0
        # included), never the turn's audio tokens, which count the whole context so far.
        result[attrs.USAGE_AUDIO_INPUT_SECONDS] = self.input_audio.seconds
        result[attrs.USAGE_AUDIO_OUTPUT_SECONDS] = self.output_audio.seconds
        result[attrs.LIVE_INTERRUPTED] = self.interrupted
        if self.finish_reason is not None:
            result[attrs.GEN_AI_RESPONSE_FINISH_REASONS] = [self.finish_reason]
        if self.end_reason is not None:
            result[attrs.LIVE_END_REASON] = self.end_reason
        if self.tool_calls:
            result[attrs.LIVE_TOOL_CALL_COUNT] = self.tool_calls
        if self._first_audio_at is not None:
            since = self.started_at
            if self._input_ended_at is not None and self._input_ended_at <= self._first_audio_at:
                since = self._input_ended_at
            result[attrs.LIVE_TIME_TO_FIRST_AUDIO] = self._first_audio_at - since
        if self._first_output_wall is not None:
            result[attrs.LANGFUSE_COMPLETION_START_TIME] = datetime.fromtimestamp(
                self._first_output_wall, tz=timezone.utc
            ).isoformat()
        self._content_attributes(result)
        self.final_attributes = result
        return result

    def _content_attributes(self, result: dict[str, AttributeValue]) -> None:
        if self._input_parts is None or self._output_parts is None:
            return
        inputs = list(self._input_parts)
        if self._input_transcript:
            inputs.append({"type": "text", "content": self._input_transcript.text()})
        if inputs:
            self.input_message = {"role": "user", "parts": inputs}
            result[attrs.GEN_AI_INPUT_MESSAGES] = _content.to_limited_json(
                [self.input_message], self._max_length
            )
        outputs: list[dict[str, Any]] = []
        for transcript in (self._output_text, self._output_transcript):
            if transcript:
                outputs.append({"type": "text", "content": transcript.text()})
        outputs.extend(self._output_parts)
        if outputs:
            message = _content.output_message((), self.finish_reason)
            message["parts"] = outputs
            self.output_message = message
            result[attrs.GEN_AI_OUTPUT_MESSAGES] = _content.to_limited_json(
                [message], self._max_length
            )
