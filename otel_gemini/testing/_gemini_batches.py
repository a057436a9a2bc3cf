"""The fake Gemini's batch jobs (Gemini API): ``POST /{version}/models/{m}:batchGenerateContent``
creates one, ``GET /{version}/batches/{id}`` reads it.

A create is answered, unscripted, with a pending job ``batches/fake-batch-{n}``; a get with
the queued :class:`BatchReply` (unscripted: 404), e.g. a running job, then a succeeded one
whose inlined responses carry each request's answer and usage; a list
(``GET /{version}/batches``) with a queued :class:`BatchListReply`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otel_gemini.testing._gemini_replies import HttpReply, ScriptedReply, generate_body
from otel_gemini.testing._gemini_requests import RecordedRequest
from otel_gemini.testing._gemini_usage import ScriptedUsage

CREATE_BATCH = "batchGenerateContent"
"""The rpc of ``POST /{version}/models/{m}:batchGenerateContent``."""
GET_BATCH = "getBatch"
"""The rpc name the fake gives ``GET /{version}/batches/{id}``."""
LIST_BATCHES = "listBatches"
"""The rpc name the fake gives ``GET /{version}/batches``."""


def created_batch(request: RecordedRequest) -> dict[str, Any]:
    """The unscripted answer to a create: a pending job."""
    return {
        "name": f"batches/fake-batch-{request.sequence}",
        "metadata": {"state": "BATCH_STATE_PENDING", "model": f"models/{request.model}"},
    }


@dataclass(frozen=True)
class BatchReply(ScriptedReply):
    """A batch job answering a get: ``state`` as the API spells it (``BATCH_STATE_RUNNING``,
    ``BATCH_STATE_SUCCEEDED``...) and, once succeeded, one inlined response per
    ``(text, usage)`` of ``responses``; ``end_time`` (ISO 8601) when it finished."""

    name: str
    model: str
    state: str = "BATCH_STATE_SUCCEEDED"
    responses: Sequence[tuple[str, ScriptedUsage]] = ()
    end_time: str | None = None
    rpcs: frozenset[str] | None = frozenset({GET_BATCH})

    def render(self, request: RecordedRequest) -> HttpReply:
        return HttpReply.json(self.job())

    def job(self) -> dict[str, Any]:
        """The job's JSON, as a get or a list returns it."""
        metadata: dict[str, Any] = {"state": self.state, "model": f"models/{self.model}"}
        if self.end_time is not None:
            metadata["endTime"] = self.end_time
        if self.responses:
            inlined = [
                {
                    "response": generate_body(
                        [{"text": text}],
                        usage=usage,
                        finish_reason="STOP",
                        response_id=f"{self.name}-{index}",
                        model_version=self.model,
                    )
                }
                for index, (text, usage) in enumerate(self.responses)
            ]
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": inlined}}
        return {
            "name": self.name,
            "metadata": metadata,
            "done": self.state != "BATCH_STATE_RUNNING",
        }


@dataclass(frozen=True)
class BatchListReply(ScriptedReply):
    """The jobs a list of batch jobs returns (one page)."""

    jobs: Sequence[BatchReply]
    rpcs: frozenset[str] | None = frozenset({LIST_BATCHES})

    def render(self, request: RecordedRequest) -> HttpReply:
        return HttpReply.json({"operations": [job.job() for job in self.jobs]})
