"""Span attributes → ``Usage`` and the context pricing needs (model, tier, Live, provider).

One reader for every instrumentation that reports GenAI usage:

- ours: ``gen_ai.usage.*`` totals, per-modality counts, ``otel_gemini.usage.*`` details;
- the official OTel google-genai instrumentation: the same totals (``input_tokens`` without
  tool-use prompt tokens, which it does not report), ``gen_ai.usage.{m}.cache_read.input_tokens``,
  and in older releases ``gen_ai.usage.prompt_tokens`` / ``completion_tokens``;
- OpenInference: ``llm.token_count.*`` and ``llm.model_name``.

The first name present wins, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from otel_gemini import _attributes as attrs
from otel_gemini.pricing import SECONDS_FIELDS, Usage

_INPUT: Final = (
    attrs.GEN_AI_USAGE_INPUT_TOKENS,
    attrs.GEN_AI_USAGE_PROMPT_TOKENS,
    attrs.LLM_TOKEN_COUNT_PROMPT,
)
_OUTPUT: Final = (
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
    attrs.GEN_AI_USAGE_COMPLETION_TOKENS,
    attrs.LLM_TOKEN_COUNT_COMPLETION,
)
_CACHE_READ: Final = (
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    attrs.LLM_TOKEN_COUNT_PROMPT_CACHE_READ,
)
_REASONING: Final = (
    attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    attrs.LLM_TOKEN_COUNT_COMPLETION_REASONING,
)
_AUDIO_INPUT: Final = (
    attrs.usage_input_tokens_by_modality("audio"),
    attrs.LLM_TOKEN_COUNT_PROMPT_AUDIO,
)
_AUDIO_OUTPUT: Final = (
    attrs.usage_output_tokens_by_modality("audio"),
    attrs.LLM_TOKEN_COUNT_COMPLETION_AUDIO,
)
_TEXT_INPUT: Final = attrs.usage_input_tokens_by_modality("text")
_IMAGE_INPUT: Final = attrs.usage_input_tokens_by_modality("image")
_VIDEO_INPUT: Final = attrs.usage_input_tokens_by_modality("video")
_TEXT_OUTPUT: Final = attrs.usage_output_tokens_by_modality("text")
_IMAGE_OUTPUT: Final = attrs.usage_output_tokens_by_modality("image")
_AUDIO_CACHE: Final = (
    attrs.USAGE_CACHE_READ_AUDIO_TOKENS,
    attrs.usage_cache_read_input_tokens_by_modality("audio"),
)
_IMAGE_CACHE: Final = (
    attrs.USAGE_CACHE_READ_IMAGE_TOKENS,
    attrs.usage_cache_read_input_tokens_by_modality("image"),
)
_VIDEO_CACHE: Final = (
    attrs.USAGE_CACHE_READ_VIDEO_TOKENS,
    attrs.usage_cache_read_input_tokens_by_modality("video"),
)
MODEL_KEYS: Final = (
    attrs.GEN_AI_RESPONSE_MODEL,
    attrs.GEN_AI_REQUEST_MODEL,
    attrs.LLM_MODEL_NAME,
)
"""Span attributes naming the model, tried in this order until one has a price."""
PROVIDER_KEYS: Final = (
    attrs.GEN_AI_PROVIDER_NAME,
    attrs.GEN_AI_SYSTEM,
    attrs.LLM_PROVIDER,
    attrs.LLM_SYSTEM,
)
"""Span attributes naming the provider, preferred first."""
LIVE_MARKERS: Final = frozenset(
    (
        attrs.LIVE_TURN_COUNT,
        attrs.LIVE_INTERRUPTED,
        attrs.LIVE_INTERRUPTION_COUNT,
        attrs.LIVE_TIME_TO_FIRST_AUDIO,
    )
)
"""Attributes only a Live API turn carries (its audio tokens are counted at the Live rate)."""
# Langfuse observation types that bill usage; other typed spans (agent, span, tool…) only
# group work whose generations carry the cost, so pricing them would count it twice.
BILLED_TYPES: Final = frozenset(("generation", "embedding"))
GROUPING_OPERATIONS: Final = frozenset(
    (attrs.OP_INVOKE_AGENT, "create_agent", "invoke_workflow", attrs.OP_EXECUTE_TOOL)
)
"""``gen_ai.operation.name`` values of spans that group model calls (an agent run, a tool).
Some carry the run's summed usage and no model (pydantic-ai's ``invoke_agent`` with
``use_aggregated_usage_attribute_names=False``): pricing them would bill the run again, or
report an ``unknown_model`` for what is no model at all. Langfuse reads no usage from agent
operations either. A ``langfuse.observation.type`` on the span decides before this."""


def first_text(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` whose value is a non-empty string, or None."""
    for key in keys:
        value = attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return None


USAGE_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    "input_tokens": _INPUT,
    "output_tokens": _OUTPUT,
    "cache_read_input_tokens": _CACHE_READ,
    "reasoning_output_tokens": _REASONING,
    "tool_use_prompt_tokens": (attrs.USAGE_TOOL_USE_PROMPT_TOKENS,),
    "text_input_tokens": (_TEXT_INPUT,),
    "image_input_tokens": (_IMAGE_INPUT,),
    "audio_input_tokens": _AUDIO_INPUT,
    "video_input_tokens": (_VIDEO_INPUT,),
    "text_output_tokens": (_TEXT_OUTPUT,),
    "image_output_tokens": (_IMAGE_OUTPUT,),
    "audio_output_tokens": _AUDIO_OUTPUT,
    "audio_cache_read_input_tokens": _AUDIO_CACHE,
    "image_cache_read_input_tokens": _IMAGE_CACHE,
    "video_cache_read_input_tokens": _VIDEO_CACHE,
    "audio_input_seconds": (attrs.USAGE_AUDIO_INPUT_SECONDS,),
    "audio_output_seconds": (attrs.USAGE_AUDIO_OUTPUT_SECONDS,),
    "output_images": (attrs.USAGE_OUTPUT_IMAGE_COUNT,),
    "output_video_seconds": (attrs.USAGE_OUTPUT_VIDEO_SECONDS,),
}
"""``Usage`` field → the span attributes it is read from, preferred first (the first present
with a numeric value wins)."""


def _slots() -> dict[str, tuple[int, int, bool]]:
    """Attribute name → (``Usage`` field index, rank, is seconds); rank 0 is preferred."""
    sources = USAGE_SOURCES
    assert set(sources) == set(Usage._fields)
    return {
        key: (Usage._fields.index(field_name), rank, field_name in SECONDS_FIELDS)
        for field_name, keys in sources.items()
        for rank, key in enumerate(keys)
    }


_SLOTS: Final = _slots()
USAGE_KEYS: Final = frozenset(_SLOTS)
"""Any of these on a span means it reports usage."""
_DEFAULTS: Final = tuple(Usage())
_FIELD_COUNT: Final = len(_DEFAULTS)


def _usage(attributes: Mapping[str, Any]) -> Usage:
    values: list[Any] = list(_DEFAULTS)
    ranks = [len(_SLOTS)] * _FIELD_COUNT
    # Only the usage names the span has (a C-level set intersection), then no lookup misses.
    for key in attributes.keys() & USAGE_KEYS:
        index, rank, is_seconds = _SLOTS[key]
        value = attributes[key]
        kind = type(value)  # exact types: a bool is not a count
        if (kind is int or kind is float) and rank < ranks[index]:
            ranks[index] = rank
            if is_seconds:
                values[index] = float(value) if value >= 0 else _DEFAULTS[index]
            elif kind is int or not value.is_integer():
                # A fractional, infinite or NaN count stays as sent: pricing calls it
                # implausible (implausible_reason) rather than billing a made-up number.
                values[index] = value
            else:
                values[index] = int(value)
    return Usage(*values)


class SpanUsage(NamedTuple):
    """What pricing needs from one span (a tuple: built for every priced span)."""

    usage: Usage
    models: tuple[str, ...]
    """Model names to try, best first (response model, request model, OpenInference)."""
    provider: str | None
    service_tier: str | None
    live: bool | None
    """True when the span says it is a Live API turn; ``None``: let the model decide."""
    user_id: str | None


def is_billed(attributes: Mapping[str, Any]) -> bool:
    """Whether a span carrying usage should be priced (see ``BILLED_TYPES`` and
    ``GROUPING_OPERATIONS``)."""
    observation_type = attributes.get(attrs.LANGFUSE_OBSERVATION_TYPE)
    if observation_type is not None:
        return observation_type in BILLED_TYPES
    return attributes.get(attrs.GEN_AI_OPERATION_NAME) not in GROUPING_OPERATIONS


def has_usage(attributes: Mapping[str, Any]) -> bool:
    """Whether any usage attribute is present (cheaper than reading them all)."""
    return not USAGE_KEYS.isdisjoint(attributes)


def read_span_usage(attributes: Mapping[str, Any]) -> SpanUsage:
    """The usage and pricing context of a span's attributes (a plain mapping)."""
    models: list[str] = []
    for key in MODEL_KEYS:
        value = attributes.get(key)
        if isinstance(value, str) and value and value not in models:
            models.append(value)
    method = attributes.get(attrs.SDK_METHOD)
    live = (isinstance(method, str) and "live" in method) or not LIVE_MARKERS.isdisjoint(attributes)
    tier = attributes.get(attrs.REQUEST_SERVICE_TIER)
    usage = _usage(attributes)
    if (
        usage.reasoning_output_tokens
        and attributes.get(attrs.GEN_AI_OPERATION_NAME) == attrs.OFFICIAL_OP_INTERACTIONS_CREATE
    ):
        # The conventions count thoughts in output_tokens (reasoning is a subset); these
        # spans do not, and pricing them as they are would leave the thoughts unbilled.
        usage = usage._replace(output_tokens=usage.output_tokens + usage.reasoning_output_tokens)
    return SpanUsage(  # positional: a keyword call of a NamedTuple costs more (every span)
        usage,
        tuple(models),
        first_text(attributes, PROVIDER_KEYS),
        tier if isinstance(tier, str) else None,
        True if live else None,
        first_text(attributes, attrs.USER_ID_KEYS),
    )
