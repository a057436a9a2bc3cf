"""google-genai usage metadata → ``gen_ai.usage.*`` attributes.

Gemini reports ``prompt_token_count`` (cached tokens included), ``candidates_token_count``,
``thoughts_token_count`` and ``tool_use_prompt_token_count`` separately. We write the GenAI
conventions' totals: input = prompt + tool-use prompt; output = candidates + thoughts, with
the cache-read and reasoning counts as subsets, and the per-modality counts Gemini reports
(thinking is counted as text output, but only where the candidates' split is known: a
response without ``candidates_tokens_details`` gets no text output count rather than one
holding the thoughts alone).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs

# The SDK's modality names → our attribute names, built once (this runs on every response).
_INPUT_KEYS = {
    "TEXT": attrs.usage_input_tokens_by_modality("text"),
    "DOCUMENT": attrs.usage_input_tokens_by_modality("text"),
    "IMAGE": attrs.usage_input_tokens_by_modality("image"),
    "AUDIO": attrs.usage_input_tokens_by_modality("audio"),
    "VIDEO": attrs.usage_input_tokens_by_modality("video"),
}
_OUTPUT_KEYS = {
    "TEXT": attrs.usage_output_tokens_by_modality("text"),
    "IMAGE": attrs.usage_output_tokens_by_modality("image"),
    "AUDIO": attrs.usage_output_tokens_by_modality("audio"),
}
_TEXT_OUTPUT = _OUTPUT_KEYS["TEXT"]
_CACHED_AUDIO_KEYS = {"AUDIO": attrs.USAGE_CACHE_READ_AUDIO_TOKENS}


def _modality_name(modality: Any) -> str:
    # The SDK's MediaModality members are str subclasses whose value is the name (upper()
    # reads it at C speed; .name is a slow Python property); older SDKs give plain strings.
    if isinstance(modality, str):
        return modality.upper()
    name = getattr(modality, "name", None)
    return (name if isinstance(name, str) else str(modality)).upper()


def _add_modality_counts(
    details: Any, keys: dict[str, str], into: dict[str, int], count_name: str = "token_count"
) -> None:
    """Adds each ``ModalityTokenCount`` in ``details`` to ``into[keys[modality]]`` (the
    Interactions API's ``ModalityTokens`` name the count ``tokens``)."""
    for detail in details:
        modality = getattr(detail, "modality", None)
        count = getattr(detail, count_name, None)
        if modality is None or not count:
            continue
        key = keys.get(_modality_name(modality))
        if key is not None:
            into[key] = into.get(key, 0) + int(count)


def _add_thoughts(
    thoughts: Any, candidates: Any, candidates_details: Any, into: dict[str, int]
) -> None:
    """Counts thinking as text output when the rest of the output's split is known: without
    ``candidates_details`` a text count of the thoughts alone would understate the text."""
    if thoughts and (candidates_details or not candidates):
        into[_TEXT_OUTPUT] = into.get(_TEXT_OUTPUT, 0) + int(thoughts)


def _totals(
    prompt: Any, tool_use: Any, cached: Any, thoughts: Any, candidates: Any
) -> dict[str, AttributeValue]:
    """The conventions' totals and subsets from Gemini's separate counts."""
    result: dict[str, AttributeValue] = {
        attrs.GEN_AI_USAGE_INPUT_TOKENS: int(prompt) + int(tool_use),
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: int(candidates) + int(thoughts),
    }
    if cached:
        result[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = int(cached)
    if thoughts:
        result[attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = int(thoughts)
    if tool_use:
        result[attrs.USAGE_TOOL_USE_PROMPT_TOKENS] = int(tool_use)
    return result


def usage_attributes(usage: Any) -> dict[str, AttributeValue]:
    """Attributes for a ``GenerateContentResponseUsageMetadata`` or Live ``UsageMetadata``.

    Live usage names the output ``response_token_count``/``response_tokens_details``.
    """
    prompt = getattr(usage, "prompt_token_count", None) or 0
    tool_use = getattr(usage, "tool_use_prompt_token_count", None) or 0
    cached = getattr(usage, "cached_content_token_count", None) or 0
    thoughts = getattr(usage, "thoughts_token_count", None) or 0
    candidates = getattr(usage, "candidates_token_count", None)
    out_details = getattr(usage, "candidates_tokens_details", None)
    if candidates is None:
        candidates = getattr(usage, "response_token_count", None)
        out_details = getattr(usage, "response_tokens_details", None)
    result = _totals(prompt, tool_use, cached, thoughts, candidates or 0)

    counts: dict[str, int] = {}
    # Most responses leave some of these lists out: skip those without a call.
    details = getattr(usage, "prompt_tokens_details", None)
    if details:
        _add_modality_counts(details, _INPUT_KEYS, counts)
    details = getattr(usage, "tool_use_prompt_tokens_details", None)
    if details:
        _add_modality_counts(details, _INPUT_KEYS, counts)
    if out_details:
        _add_modality_counts(out_details, _OUTPUT_KEYS, counts)
    _add_thoughts(thoughts, candidates, out_details, counts)
    # Cached audio is priced apart; the other modalities' cache reads are not needed.
    details = getattr(usage, "cache_tokens_details", None)
    if details:
        _add_modality_counts(details, _CACHED_AUDIO_KEYS, counts)
    result.update(counts)
    return result


def interaction_usage_attributes(usage: Any) -> dict[str, AttributeValue]:
    """Attributes for the Interactions API's ``Usage`` (one request's, i.e. one hop's).

    Its totals split as ``usage_metadata``'s do: ``total_input_tokens`` includes the cached
    tokens, ``total_output_tokens`` excludes thoughts and ``total_tokens`` adds input, output,
    thoughts and tool-use tokens. So the same conventions' totals follow.
    """
    prompt = getattr(usage, "total_input_tokens", None) or 0
    tool_use = getattr(usage, "total_tool_use_tokens", None) or 0
    cached = getattr(usage, "total_cached_tokens", None) or 0
    thoughts = getattr(usage, "total_thought_tokens", None) or 0
    candidates = getattr(usage, "total_output_tokens", None) or 0
    result = _totals(prompt, tool_use, cached, thoughts, candidates)
    counts: dict[str, int] = {}
    for name, keys in (
        ("input_tokens_by_modality", _INPUT_KEYS),
        ("tool_use_tokens_by_modality", _INPUT_KEYS),
        ("output_tokens_by_modality", _OUTPUT_KEYS),
        ("cached_tokens_by_modality", _CACHED_AUDIO_KEYS),
    ):
        details = getattr(usage, name, None)
        if details:
            _add_modality_counts(details, keys, counts, "tokens")
    _add_thoughts(thoughts, candidates, getattr(usage, "output_tokens_by_modality", None), counts)
    result.update(counts)
    return result
