"""``Usage``: what one request used, as its span reports it."""

from __future__ import annotations

from typing import Final, NamedTuple


class Usage(NamedTuple):
    """Token and unit counts of one billed request (or one Live turn).

    Totals follow the GenAI semantic conventions: ``input_tokens`` counts ALL input (cached and
    tool-use prompt tokens included) and ``output_tokens`` counts ALL output (thinking
    included). Every other count is a subset of one of those totals; pricing splits them into
    mutually exclusive buckets (see :meth:`PriceTable.cost`). Counts default to 0.

    A ``NamedTuple`` so it is immutable and cheap to build on the application thread.
    """

    input_tokens: int = 0
    """All input tokens: the prompt (cached part included) plus tool-use prompt tokens."""
    output_tokens: int = 0
    """All output tokens: candidates plus thinking."""
    cache_read_input_tokens: int = 0
    """Input tokens served from the context cache (implicit or explicit)."""
    reasoning_output_tokens: int = 0
    """Thinking tokens (part of ``output_tokens``)."""
    tool_use_prompt_tokens: int = 0
    """Tokens of tool results fed back to the model (part of ``input_tokens``)."""
    text_input_tokens: int = 0
    image_input_tokens: int = 0
    audio_input_tokens: int = 0
    video_input_tokens: int = 0
    text_output_tokens: int = 0
    image_output_tokens: int = 0
    audio_output_tokens: int = 0
    audio_cache_read_input_tokens: int = 0
    """Cached audio tokens (part of ``cache_read_input_tokens``); priced at the audio cache rate."""
    image_cache_read_input_tokens: int = 0
    video_cache_read_input_tokens: int = 0
    audio_input_seconds: float | None = None
    """Seconds of audio sent, measured from the streamed PCM (Live API); for per-minute prices."""
    audio_output_seconds: float | None = None
    """Seconds of audio received, measured from the streamed PCM (Live API)."""
    output_images: int = 0
    """Images generated (Imagen), for per-image prices."""
    output_video_seconds: float = 0.0
    """Seconds of video generated (Veo), for per-second prices."""

    @property
    def is_empty(self) -> bool:
        """Whether nothing billable was reported (all counts zero)."""
        return not (any(self[:_REPORTED_COUNTS]) or self.output_images or self.output_video_seconds)


COUNT_FIELDS: Final = tuple(name for name in Usage._fields if name.endswith("_tokens"))
"""``Usage``'s token counts, in its field order."""
REPORTED_COUNT_FIELDS: Final = tuple(
    name for name in COUNT_FIELDS if not name.endswith("_cache_read_input_tokens")
)
"""The counts whose being all zero means no tokens were reported (``Usage.is_empty``): the
cache-by-modality counts are left out, being parts of ``cache_read_input_tokens``."""
# Both are read by position (is_empty, split_tokens): they must lead Usage's fields.
assert Usage._fields[: len(COUNT_FIELDS)] == COUNT_FIELDS
assert COUNT_FIELDS[: len(REPORTED_COUNT_FIELDS)] == REPORTED_COUNT_FIELDS
_REPORTED_COUNTS: Final = len(REPORTED_COUNT_FIELDS)
SECONDS_FIELDS: Final = tuple(name for name in Usage._fields if name.endswith("_seconds"))
"""``Usage``'s measured seconds (floats; the others are whole counts)."""
