"""Google ADK: the runner's user and session on every span of an invocation.

ADK's ``Runner.run_async(user_id=..., session_id=...)`` names the user and session, but ADK
puts only the session on its spans (as ``gen_ai.conversation.id``) and the user on none. Add
the plugin to the runner, one line::

    from otel_gemini.adk import OtelGeminiPlugin

    runner = InMemoryRunner(agent=agent, app_name="app", plugins=[OtelGeminiPlugin()])

Its callbacks stamp ``user.id`` and ``session.id`` on the span current when the invocation,
each agent and each model call start; the spans started below (ADK's ``generate_content``,
otel-gemini's own span of the Gemini request, the one priced) take them from their parent
(``otel_gemini.trace_attributes``'s processor, installed by ``configure()``). So the cost
store's rows and Langfuse's traces carry the user and session the app gave the runner.
Values the app set with ``otel_gemini.trace_attributes()`` win. See ``docs/frameworks.md``.

Importing this module needs ``google-adk``.
"""

from __future__ import annotations

from typing import Any

from google.adk.plugins.base_plugin import BasePlugin
from opentelemetry import trace

from otel_gemini import _attributes as attrs
from otel_gemini._trace_attributes import current_trace_attributes

__all__ = ["OtelGeminiPlugin"]


class OtelGeminiPlugin(BasePlugin):
    """An ADK plugin that puts the invocation's user and session on its spans.

    It changes nothing in the run (every callback returns ``None``) and reads only the
    invocation's session (its ``user_id`` and ``id``)."""

    def __init__(self, name: str = "otel_gemini") -> None:
        super().__init__(name=name)

    async def before_run_callback(self, *, invocation_context: Any) -> None:
        """Stamps the invocation's span (``invocation`` / ``invoke_workflow``)."""
        _stamp(getattr(invocation_context, "session", None))
        return None

    async def before_agent_callback(self, *, agent: Any, callback_context: Any) -> None:
        """Stamps the agent's span (``invoke_agent``)."""
        _stamp(getattr(callback_context, "session", None))
        return None

    async def before_model_callback(self, *, callback_context: Any, llm_request: Any) -> None:
        """Stamps the span the model call starts under (``call_llm`` or the agent's)."""
        _stamp(getattr(callback_context, "session", None))
        return None


def _stamp(session: Any) -> None:
    """The ADK session's ``user_id`` and ``id`` as ``user.id`` and ``session.id`` on the
    current span, where the app's ``trace_attributes()`` set none."""
    if session is None:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    values: dict[str, str] = {}
    user_id = getattr(session, "user_id", None)
    if isinstance(user_id, str) and user_id:
        values[attrs.USER_ID] = user_id
    session_id = getattr(session, "id", None)
    if isinstance(session_id, str) and session_id:
        values[attrs.SESSION_ID] = session_id
    given = current_trace_attributes()
    span.set_attributes({key: value for key, value in values.items() if key not in given})
