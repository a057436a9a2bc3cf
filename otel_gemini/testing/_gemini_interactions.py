"""The fake Gemini's Interactions API: ``POST /{version}/interactions`` (create) and
``GET /{version}/interactions/{id}`` (get), google-genai >= 1.55.

One scripted interaction answers both shapes the client can ask for: the ``Interaction`` JSON,
or (``"stream": true`` in the create request, ``stream=true`` in the get's query) the SSE
events ``interaction.created``, ``step.start``, a ``step.delta`` per text piece, ``step.stop``
and ``interaction.completed`` carrying the usage. Usage is the hop's own, as the API reports
it for each continuation hop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otel_gemini.testing._gemini_replies import HttpReply, ScriptedReply, sse_reply
from otel_gemini.testing._gemini_requests import RecordedRequest
from otel_gemini.testing._gemini_usage import ScriptedUsage

CREATE_INTERACTION = "createInteraction"
"""The rpc name the fake gives ``POST /{version}/interactions``."""
GET_INTERACTION = "getInteraction"
"""The rpc name the fake gives ``GET /{version}/interactions/{id}``."""


def interaction_id_for(request: RecordedRequest) -> str:
    """The id the fake gives an interaction that the script does not name."""
    return f"fake-interaction-{request.sequence}"


def wants_stream(request: RecordedRequest) -> bool:
    """Whether a request asked for SSE (``"stream": true`` in a create's body, ``stream=true``
    in a get's query)."""
    if request.query.get("stream") == "true":
        return True
    return isinstance(request.json, dict) and request.json.get("stream") is True


def input_text(request: RecordedRequest) -> str:
    """A create request's input when it is a plain string, else its last ``text``."""
    body = request.json if isinstance(request.json, dict) else {}
    given = body.get("input")
    if isinstance(given, str):
        return given
    texts = request.texts
    return texts[-1] if texts else ""


@dataclass(frozen=True)
class InteractionReply(ScriptedReply):
    """One interaction (or, for a streaming request, its events) answering a create request
    (or, with ``rpcs={GET_INTERACTION}``, a get).

    ``status`` is the interaction's (``completed``, ``requires_continuation`` with a
    ``continuation_token`` for a hop the client continues, ``requires_action``,
    ``in_progress`` for a background one...); ``interaction_id`` defaults to
    ``fake-interaction-{n}``; ``model`` to the requested one; ``agent`` names the agent that
    ran it (an agent's interaction names no model unless ``model`` is given); ``updated``
    (ISO 8601) is the time the interaction was last updated.
    The answer is ``texts`` joined; a stream sends one ``step.delta`` per text and, with
    ``stream_error`` (an error code such as ``"RESOURCE_EXHAUSTED"``), ends with an in-band
    ``error`` event instead of ``interaction.completed``, as the API reports a failure after
    the stream has started.
    """

    texts: Sequence[str]
    usage: ScriptedUsage | None = None
    status: str = "completed"
    continuation_token: str | None = None
    interaction_id: str | None = None
    model: str | None = None
    stream_error: str | None = None
    updated: str | None = None
    agent: str | None = None
    rpcs: frozenset[str] | None = frozenset({CREATE_INTERACTION})

    def interaction(self, request: RecordedRequest, *, with_steps: bool) -> dict[str, Any]:
        """The ``Interaction`` JSON this reply renders for ``request``."""
        body: dict[str, Any] = {
            "id": self.interaction_id or interaction_id_for(request),
            "object": "interaction",
            "status": self.status,
        }
        # An agent's request names the agent, not a model: the answer names one if scripted.
        model = self.model if self.agent is not None else self.model or request.model
        if model is not None:
            body["model"] = model
        if self.agent is not None:
            body["agent"] = self.agent
        if with_steps:
            body["steps"] = [
                {"type": "model_output", "content": [{"type": "text", "text": "".join(self.texts)}]}
            ]
        if self.usage is not None:
            body["usage"] = self.usage.to_interaction_json()
        if self.continuation_token is not None:
            body["continuation_token"] = self.continuation_token
        if self.updated is not None:
            body["updated"] = self.updated
        return body

    def render(self, request: RecordedRequest) -> HttpReply:
        completed = self.interaction(request, with_steps=not wants_stream(request))
        if not wants_stream(request):
            return HttpReply.json(completed)
        started = {"id": completed["id"], "status": "in_progress", "object": "interaction"}
        for key in ("model", "agent"):
            if key in completed:
                started[key] = completed[key]
        events: list[dict[str, Any]] = [
            {"event_type": "interaction.created", "interaction": started},
            {
                "event_type": "step.start",
                "index": 0,
                "step": {"type": "model_output", "content": []},
            },
            *(
                {"event_type": "step.delta", "index": 0, "delta": {"type": "text", "text": piece}}
                for piece in self.texts
            ),
            {"event_type": "step.stop", "index": 0},
        ]
        if self.stream_error is None:
            events.append({"event_type": "interaction.completed", "interaction": completed})
        else:
            error = {"code": self.stream_error, "message": "fake error in the middle of the stream"}
            events.append({"event_type": "error", "error": error})
        return sse_reply(events)
