"""One Live API connection: the session span, its turns and its tool calls.

Which turn a message belongs to:

- Every input (audio, text, video, client content, a tool result, ``activity_start``) goes to
  the open turn, or opens one. ``audio_stream_end`` / ``activity_end`` only mark the end of
  the open turn's input (time to first audio is measured from there).
- Model output (audio, text, transcription of the model, a tool call) goes to the open turn,
  or opens one when the model speaks first. A turn is over at ``turn_complete`` or
  ``interrupted``; it then waits, ended, for usage that arrives late.
- Usage: in a message with model output, the open turn's. Alone, it belongs to the turn whose
  model output came last before it: the open turn once the model answered in it, else the
  ended turn still waiting. Within one turn the last usage wins.
- An ended turn is finalised (its span exported) when the next turn's model output starts,
  when another turn ends, or when the session ends.

The session span carries the totals over its turns under ``otel_gemini.live.*`` (never
``gen_ai.usage.*``): its turns are the billed generations. With content capture on it also
carries the conversation, each turn's input and output message in order, as its
``gen_ai.input.messages`` / ``gen_ai.output.messages``: Langfuse takes a trace's input and
output from its root, and the session is the root of a Live trace.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Link, SpanContext
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._trace_attributes import current_trace_attributes
from otel_gemini.instrumentation import _content
from otel_gemini.instrumentation import _live_resumption as resumption
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._invocation import Invocation
from otel_gemini.instrumentation._live_turn import LiveTurn
from otel_gemini.instrumentation._recorders import start_tool_invocation

END_CLOSED = "closed"
END_SERVER_CLOSED = "server_closed"
END_CONNECTION_LOST = "connection_lost"
END_CANCELLED = "cancelled"
END_ERROR = "error"
END_CONNECT_FAILED = "connect_failed"
_NORMAL_CLOSE = 1000

# Turn attributes summed onto the session span (under otel_gemini.live.usage.*).
_SUMMED_PREFIXES = ("gen_ai.usage.", "otel_gemini.usage.")


def close_code(error: BaseException) -> int | None:
    """The WebSocket close code behind a receive or send error, when there is one."""
    received = getattr(error, "rcvd", None)  # websockets.ConnectionClosed
    code = getattr(received, "code", None)
    if isinstance(code, int):
        return code
    if hasattr(error, "rcvd"):
        return 1006  # closed without a close frame
    code = getattr(error, "code", None)  # google-genai 3.x re-raises it as APIError(code)
    if isinstance(code, int) and 1000 <= code <= 4999:
        return code
    return None


class _SessionRecorder:
    """The session span's final attributes (a ``ResponseRecorder``)."""

    __slots__ = ("tracker",)

    def __init__(self, tracker: LiveSessionTracker) -> None:
        self.tracker = tracker

    def add(self, response: Any) -> None:
        return None

    def attributes(self) -> Mapping[str, AttributeValue]:
        return self.tracker.session_attributes()


class LiveSessionTracker:
    """Turns a Live session's sends and received messages into spans. Never raises.

    Used from one event loop (the SDK's WebSocket is not thread-safe either), so no locks.
    """

    def __init__(
        self,
        instruments: Instruments,
        model: str,
        session_attributes: dict[str, AttributeValue],
        turn_attributes: dict[str, AttributeValue],
        resumes: SpanContext | None = None,
    ) -> None:
        self._instruments = instruments
        self._model = model
        self._turn_attributes = turn_attributes
        self._current: LiveTurn | None = None
        self._pending: LiveTurn | None = None
        self._turns = 0
        self._interruptions = 0
        self._tool_calls = 0
        self._messages = 0
        self._totals: dict[str, int | float] = {}
        self._conversation = _Conversation(instruments.settings.content_max_length)
        self._tools: dict[str, Invocation] = {}
        self._session_id: str | None = None
        self._end_reason: str | None = None
        self._close_code: int | None = None
        self._transport_error: BaseException | None = None
        self._ended = False
        self._resumption_updates = 0
        self._resumable: bool | None = None
        self._go_away_time_left: float | None = None
        self.session = Invocation(
            instruments,
            f"{attrs.OP_LIVE_SESSION} {model}",
            session_attributes,
            _SessionRecorder(self),
            # A resumed session links to the one whose handle it presented.
            links=[Link(resumes)] if resumes is not None else None,
        )
        # Turns get what trace_attributes() held when the session opened: their sends and
        # receives may run in other tasks (Invocation adds any set there on top).
        self._turn_attributes.update(current_trace_attributes())

    # --- lifecycle ---

    def connected(self, session: Any) -> None:
        session_id = getattr(session, "session_id", None)
        if isinstance(session_id, str) and session_id:
            self._session_id = session_id

    def connect_failed(self, error: BaseException) -> None:
        self._end_reason = END_CONNECT_FAILED
        code = close_code(error)
        if code is not None:
            self._close_code = code
        self.session.fail(error)

    def end(self, error: BaseException | None) -> None:
        """The ``async with`` block is over, normally (``error`` None) or by ``error``."""
        if self._ended:
            return
        self._ended = True
        try:
            failure = self._classify_end(error)
            self._end_open_work(failure)
        except Exception as internal:
            report_internal_error("end live session", internal)
            failure = error if error is not None and not _is_cancellation(error) else None
        if failure is None:
            self.session.finish()
        else:
            self.session.fail(failure)

    def _classify_end(self, error: BaseException | None) -> BaseException | None:
        """Sets the end reason; returns the error the session failed with, if it did."""
        transport = self._transport_error
        if transport is not None:
            code = close_code(transport)
            if code is not None:
                self._close_code = code
        if error is not None and _is_cancellation(error):
            self._end_reason = END_CANCELLED
            return None
        if error is not None:
            if transport is not None and (error is transport or close_code(error) is not None):
                self._end_reason = (
                    END_SERVER_CLOSED if self._close_code == _NORMAL_CLOSE else END_CONNECTION_LOST
                )
            else:
                self._end_reason = END_ERROR
            return error
        if transport is not None:
            if self._close_code == _NORMAL_CLOSE:
                self._end_reason = END_SERVER_CLOSED
                return None
            self._end_reason = END_CONNECTION_LOST
            return transport
        self._end_reason = END_CLOSED
        return None

    def _end_open_work(self, failure: BaseException | None) -> None:
        reason = self._end_reason
        for key, tool in list(self._tools.items()):
            tool.span.set_attribute(attrs.LIVE_END_REASON, reason or END_CLOSED)
            if failure is None:
                tool.finish()
            else:
                tool.fail(failure)
            del self._tools[key]
        self._finalize_pending()
        turn = self._current
        self._current = None
        if turn is not None:
            turn.end_reason = reason
            if failure is None:
                turn.invocation.finish()
            else:
                turn.invocation.fail(failure)
            self._add_to_totals(turn)

    # --- sends (before the SDK sends: the turn's first input opens it) ---

    def input_turn(self) -> LiveTurn:
        """The open turn, opened now if there is none."""
        return self._current if self._current is not None else self._open_turn()

    def open_turn_or_none(self) -> LiveTurn | None:
        return self._current

    def tool_responses(self, responses: list[Any]) -> None:
        """``send_tool_response`` succeeded: each answered call's span ends."""
        for response in responses:
            call_id = field(response, "id")
            name = field(response, "name")
            tool = None
            if call_id:
                tool = self._tools.pop(str(call_id), None)
            if tool is None and name:
                tool = self._tools.pop(f"name:{name}", None)
            if tool is None:
                continue
            tool.observe(field(response, "response"))
            tool.finish()

    def send_failed(self, error: BaseException) -> None:
        if not _is_cancellation(error) and close_code(error) is not None:
            self._transport_error = error

    # --- received messages ---

    def receive_failed(self, error: BaseException) -> None:
        if not _is_cancellation(error):
            self._transport_error = error

    def on_message(self, message: Any) -> None:
        try:
            self._on_message(message)
        except Exception as error:
            report_internal_error("record live message", error)

    def _on_message(self, message: Any) -> None:
        self._messages += 1
        update = message.session_resumption_update
        if update is not None:
            self._on_resumption_update(update)
        if message.go_away is not None:
            self._on_go_away(message.go_away)
        content = message.server_content
        output_turn: LiveTurn | None = None
        finished = False
        interrupted = False
        if content is not None:
            model_turn = content.model_turn
            if model_turn is not None and model_turn.parts:
                output_turn = self._output_turn()
                for part in model_turn.parts:
                    output_turn.add_model_part(part)
            transcription = content.output_transcription
            if transcription is not None and transcription.text:
                output_turn = output_turn or self._output_turn()
                output_turn.add_output_transcript(transcription.text)
            transcription = content.input_transcription
            if transcription is not None and transcription.text:
                self.input_turn().add_input_transcript(transcription.text)
            if content.generation_complete and self._current is not None:
                output_turn = output_turn or self._output_turn()
            interrupted = bool(content.interrupted)
            finished = interrupted or _turn_complete(content)
        tool_call = message.tool_call
        if tool_call is not None and tool_call.function_calls:
            output_turn = output_turn or self._output_turn()
            for call in tool_call.function_calls:
                self._start_tool(output_turn, call)
        cancellation = message.tool_call_cancellation
        if cancellation is not None and cancellation.ids:
            self._cancel_tools(cancellation.ids)
        usage = message.usage_metadata
        if usage is not None:
            self._usage_turn(output_turn).usage = usage
        if finished:
            self._end_current(interrupted)

    # --- turn bookkeeping ---

    def _open_turn(self) -> LiveTurn:
        self._turns += 1
        with self.session.activate():
            turn = LiveTurn(
                self._instruments, self._model, self._turns, dict(self._turn_attributes)
            )
        self._current = turn
        return turn

    def _output_turn(self) -> LiveTurn:
        turn = self.input_turn()
        if not turn.has_output:
            turn.output_started()
            # The model answers a new turn: usage can no longer be the previous turn's.
            self._finalize_pending()
        return turn

    def _usage_turn(self, output_turn: LiveTurn | None) -> LiveTurn:
        if output_turn is not None:
            return output_turn
        current = self._current
        if current is not None and current.has_output:
            return current
        if self._pending is not None:
            return self._pending
        return self.input_turn()

    def _end_current(self, interrupted: bool) -> None:
        turn = self._current
        if turn is None:
            return
        turn.complete(interrupted)
        if interrupted:
            self._interruptions += 1
        self._finalize_pending()
        self._pending = turn
        self._current = None

    def _finalize_pending(self) -> None:
        turn = self._pending
        if turn is None:
            return
        self._pending = None
        turn.invocation.finish(ended_at=turn.ended_at)
        self._add_to_totals(turn)

    def _add_to_totals(self, turn: LiveTurn) -> None:
        self._conversation.add(turn)
        totals = self._totals
        for key, value in turn.final_attributes.items():
            if (
                key.startswith(_SUMMED_PREFIXES)
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
            ):
                totals[key] = totals.get(key, 0) + value

    # --- tools ---

    def _start_tool(self, turn: LiveTurn, call: Any) -> None:
        turn.add_tool_call(call)
        self._tool_calls += 1
        name = call.name or "tool"
        with turn.invocation.activate():
            tool = start_tool_invocation(self._instruments, name, call.args, call.id)
        self._tools[str(call.id) if call.id else f"name:{name}"] = tool

    def _cancel_tools(self, ids: list[str]) -> None:
        for call_id in ids:
            tool = self._tools.pop(str(call_id), None)
            if tool is not None:
                tool.span.set_attribute(attrs.LIVE_TOOL_CANCELLED, True)
                tool.finish()

    def _on_resumption_update(self, update: Any) -> None:
        self._resumption_updates += 1
        if update.resumable is not None:
            self._resumable = bool(update.resumable)
        if update.new_handle:
            resumption.handles.remember(update.new_handle, self.session.span.get_span_context())

    def _on_go_away(self, go_away: Any) -> None:
        seconds = resumption.duration_seconds(go_away.time_left)
        self._go_away_time_left = seconds
        event: dict[str, AttributeValue] = {}
        if seconds is not None:
            event[attrs.LIVE_GO_AWAY_TIME_LEFT] = seconds
        self.session.span.add_event(attrs.LIVE_GO_AWAY, event)

    # --- the session span ---

    def session_attributes(self) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {
            attrs.LIVE_TURN_COUNT: self._turns,
            attrs.LIVE_INTERRUPTION_COUNT: self._interruptions,
            attrs.LIVE_MESSAGES_RECEIVED: self._messages,
        }
        if self._tool_calls:
            result[attrs.LIVE_TOOL_CALL_COUNT] = self._tool_calls
        if self._session_id is not None:
            result[attrs.LIVE_SESSION_ID] = self._session_id
        if self._end_reason is not None:
            result[attrs.LIVE_END_REASON] = self._end_reason
        if self._close_code is not None:
            result[attrs.LIVE_CLOSE_CODE] = self._close_code
        if self._resumption_updates:
            result[attrs.LIVE_RESUMPTION_UPDATES] = self._resumption_updates
        if self._resumable is not None:
            result[attrs.LIVE_RESUMABLE] = self._resumable
        if self._go_away_time_left is not None:
            result[attrs.LIVE_GO_AWAY_TIME_LEFT] = self._go_away_time_left
        for key, value in self._totals.items():
            result[attrs.live_usage_total(key)] = value
        result.update(self._conversation.attributes())
        return result


class _Conversation:
    """What was said in and out over a session's turns (content capture only), bounded.

    Each turn's messages are already limited to ``max_length``; once either side holds that
    much, later turns are no longer kept (the attribute could not show them anyway), so a
    long session holds at most about twice ``max_length`` characters per side.
    """

    __slots__ = ("_inputs", "_lengths", "_max_length", "_outputs")

    def __init__(self, max_length: int) -> None:
        self._max_length = max_length
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._lengths = [0, 0]

    def add(self, turn: LiveTurn) -> None:
        for side, (messages, message) in enumerate(
            ((self._inputs, turn.input_message), (self._outputs, turn.output_message))
        ):
            if message is not None and self._lengths[side] < self._max_length:
                messages.append(message)
                self._lengths[side] += len(json.dumps(message, default=str, ensure_ascii=False))

    def attributes(self) -> dict[str, AttributeValue]:
        result: dict[str, AttributeValue] = {}
        if self._inputs:
            result[attrs.GEN_AI_INPUT_MESSAGES] = _content.to_limited_json(
                self._inputs, self._max_length
            )
        if self._outputs:
            result[attrs.GEN_AI_OUTPUT_MESSAGES] = _content.to_limited_json(
                self._outputs, self._max_length
            )
        return result


def _turn_complete(content: Any) -> bool:
    # google-genai 3.x also ends a turn on interaction_status IDLE (its receive() stops there).
    # Read from __dict__: google-genai 1.x has no such field, and a missing attribute costs a
    # raised AttributeError inside pydantic on every message.
    status = getattr(content, "__dict__", {}).get("interaction_status")
    if status is not None:
        name = getattr(status, "name", str(status))
        if name != "INTERACTION_STATUS_UNSPECIFIED":
            return name == "IDLE"
    return bool(content.turn_complete)


def _is_cancellation(error: BaseException) -> bool:
    return isinstance(error, asyncio.CancelledError)
