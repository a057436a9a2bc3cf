"""google-genai usage metadata → ``gen_ai.usage.*`` attributes.

Gemini reports ``prompt_token_count`` (cached tokens included), ``candidates_token_count``,
``thoughts_token_count`` and ``tool_use_prompt_token_count`` separately. We write the GenAI
conventions' totals: input = prompt + tool-use prompt; output = candidates + thoughts, with
the cache-read and reasoning counts as subsets, and per-modality counts that add up to those
totals (thinking is counted as text output).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs

_INPUT_MODALITY = {
    "TEXT": "text",
    "DOCUMENT": "text",
    "IMAGE": "image",
    "AUDIO": "audio",
    "VIDEO": "video",
}
_OUTPUT_MODALITY = {"TEXT": "text", "IMAGE": "image", "AUDIO": "audio"}


def _modality_counts(details: Any, names: dict[str, str], into: dict[str, int]) -> None:
    for detail in details or ():
        modality = getattr(detail, "modality", None)
        count = getattr(detail, "token_count", None) or 0
        key = names.get(getattr(modality, "name", str(modality)).upper()) if modality else None
        if key is not None and count:
            into[key] = into.get(key, 0) + int(count)


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
    candidates = candidates or 0

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

    inputs: dict[str, int] = {}
    _modality_counts(getattr(usage, "prompt_tokens_details", None), _INPUT_MODALITY, inputs)
    _modality_counts(
        getattr(usage, "tool_use_prompt_tokens_details", None), _INPUT_MODALITY, inputs
    )
    for modality, count in inputs.items():
        result[attrs.usage_input_tokens_by_modality(modality)] = count

    outputs: dict[str, int] = {}
    _modality_counts(out_details, _OUTPUT_MODALITY, outputs)
    if thoughts:
        outputs["text"] = outputs.get("text", 0) + int(thoughts)
    for modality, count in outputs.items():
        result[attrs.usage_output_tokens_by_modality(modality)] = count

    cache_by_modality: dict[str, int] = {}
    _modality_counts(
        getattr(usage, "cache_tokens_details", None), _INPUT_MODALITY, cache_by_modality
    )
    if cache_by_modality.get("audio"):
        result[attrs.USAGE_CACHE_READ_AUDIO_TOKENS] = cache_by_modality["audio"]
    return result
