"""The attribute sets of one kind of request's metric points, built once and reused.

Every request records up to three points (``gen_ai.client.operation.duration`` and the input
and output ``gen_ai.client.token.usage``) whose attributes depend only on the request's
operation, model and server plus the response model and error type: a handful of sets per
call site. Building them once keeps that work off each call; the SDK copies the attributes
it is given, and these dicts are never mutated after they are built, so sharing them is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs

# Request attributes copied onto metric points (low cardinality only); the response
# model and error type are added when known.
METRIC_KEYS = (
    attrs.GEN_AI_OPERATION_NAME,
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.GEN_AI_REQUEST_MODEL,
    attrs.SERVER_ADDRESS,
    attrs.SERVER_PORT,
)

# Distinct (response model, error type) outcomes kept per call site; past that (a model
# alias resolving to many versions, many error types) the cache starts over.
_MAX_OUTCOMES = 32


class OutcomePoints(NamedTuple):
    """The attributes of one outcome's points."""

    duration: Mapping[str, AttributeValue]
    input_tokens: Mapping[str, AttributeValue]
    output_tokens: Mapping[str, AttributeValue]


class MetricPoints:
    """Metric point attributes for requests that share their request attributes."""

    __slots__ = ("_base", "_outcomes")

    def __init__(self, request_attributes: Mapping[str, AttributeValue]) -> None:
        self._base = {
            key: request_attributes[key] for key in METRIC_KEYS if key in request_attributes
        }
        self._outcomes: dict[tuple[str | None, str | None], OutcomePoints] = {}

    def outcome(self, response_model: str | None, error_type: str | None) -> OutcomePoints:
        """The points' attributes for a request answered by ``response_model``, or failed."""
        key = (response_model, error_type)
        points = self._outcomes.get(key)
        if points is None:
            duration = dict(self._base)
            if response_model is not None:
                duration[attrs.GEN_AI_RESPONSE_MODEL] = response_model
            if error_type is not None:
                duration[attrs.ERROR_TYPE] = error_type
            points = OutcomePoints(
                duration,
                {**duration, attrs.GEN_AI_TOKEN_TYPE: "input"},
                {**duration, attrs.GEN_AI_TOKEN_TYPE: "output"},
            )
            if len(self._outcomes) >= _MAX_OUTCOMES:
                self._outcomes.clear()
            self._outcomes[key] = points
        return points
