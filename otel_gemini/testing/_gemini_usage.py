"""Token usage as the Gemini REST API reports it (``usageMetadata``), for scripting fake replies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _modality_details(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    return [
        {"modality": modality.upper(), "tokenCount": count} for modality, count in counts.items()
    ]


@dataclass(frozen=True)
class ScriptedUsage:
    """Token counts a fake reply reports, rendered as Gemini's camelCase ``usageMetadata``.

    The field meanings follow the API: ``prompt`` includes ``cached`` tokens; ``thoughts`` and
    ``tool_use_prompt`` are separate from both. ``total`` defaults to what Gemini reports,
    ``prompt + candidates + thoughts + tool_use_prompt``. The ``*_by_modality`` mappings take a
    modality name (``TEXT``, ``IMAGE``, ``AUDIO``, ``VIDEO``, ``DOCUMENT``; any case) to a count
    and render as the matching ``*TokensDetails`` list.

    Like the real API, zero counts of optional fields (cached, thoughts, tool-use prompt,
    candidates) are left out of the JSON.

    Example::

        ScriptedUsage(prompt=120, cached=100, candidates=30, thoughts=12,
                      prompt_by_modality={"TEXT": 80, "IMAGE": 40})
    """

    prompt: int = 0
    candidates: int = 0
    cached: int = 0
    thoughts: int = 0
    tool_use_prompt: int = 0
    total: int | None = None
    prompt_by_modality: Mapping[str, int] = field(default_factory=dict)
    candidates_by_modality: Mapping[str, int] = field(default_factory=dict)
    cache_by_modality: Mapping[str, int] = field(default_factory=dict)
    tool_use_prompt_by_modality: Mapping[str, int] = field(default_factory=dict)
    traffic_type: str | None = None
    """Vertex AI only: e.g. ``ON_DEMAND`` or ``PROVISIONED_THROUGHPUT``."""

    @property
    def total_tokens(self) -> int:
        """The ``totalTokenCount`` this usage renders."""
        if self.total is not None:
            return self.total
        return self.prompt + self.candidates + self.thoughts + self.tool_use_prompt

    def to_json(self) -> dict[str, Any]:
        """The ``usageMetadata`` object, as the REST API sends it."""
        rendered: dict[str, Any] = {"promptTokenCount": self.prompt}
        if self.candidates:
            rendered["candidatesTokenCount"] = self.candidates
        if self.cached:
            rendered["cachedContentTokenCount"] = self.cached
        if self.tool_use_prompt:
            rendered["toolUsePromptTokenCount"] = self.tool_use_prompt
        if self.thoughts:
            rendered["thoughtsTokenCount"] = self.thoughts
        rendered["totalTokenCount"] = self.total_tokens
        details = (
            ("promptTokensDetails", self.prompt_by_modality),
            ("cacheTokensDetails", self.cache_by_modality),
            ("candidatesTokensDetails", self.candidates_by_modality),
            ("toolUsePromptTokensDetails", self.tool_use_prompt_by_modality),
        )
        for key, counts in details:
            if counts:
                rendered[key] = _modality_details(counts)
        if self.traffic_type is not None:
            rendered["trafficType"] = self.traffic_type
        return rendered

    def to_interaction_json(self) -> dict[str, Any]:
        """The Interactions API's ``usage`` object for the same counts (snake_case totals,
        ``*_by_modality`` lists of ``{"modality": "text", "tokens": n}``)."""
        rendered: dict[str, Any] = {
            "total_input_tokens": self.prompt,
            "total_output_tokens": self.candidates,
            "total_tokens": self.total_tokens,
        }
        if self.cached:
            rendered["total_cached_tokens"] = self.cached
        if self.thoughts:
            rendered["total_thought_tokens"] = self.thoughts
        if self.tool_use_prompt:
            rendered["total_tool_use_tokens"] = self.tool_use_prompt
        details = (
            ("input_tokens_by_modality", self.prompt_by_modality),
            ("cached_tokens_by_modality", self.cache_by_modality),
            ("output_tokens_by_modality", self.candidates_by_modality),
            ("tool_use_tokens_by_modality", self.tool_use_prompt_by_modality),
        )
        for key, counts in details:
            if counts:
                rendered[key] = [
                    {"modality": modality.lower(), "tokens": count}
                    for modality, count in counts.items()
                ]
        return rendered

    def partial(self, candidates: int) -> ScriptedUsage:
        """This usage as a stream chunk before the last reports it: ``candidates`` so far.

        Prompt-side counts and thoughts are already final (Gemini thinks before it answers);
        output per-modality details are left for the last chunk.
        """
        return ScriptedUsage(
            prompt=self.prompt,
            candidates=candidates,
            cached=self.cached,
            thoughts=self.thoughts,
            tool_use_prompt=self.tool_use_prompt,
            prompt_by_modality=self.prompt_by_modality,
            cache_by_modality=self.cache_by_modality,
            tool_use_prompt_by_modality=self.tool_use_prompt_by_modality,
            traffic_type=self.traffic_type,
        )
