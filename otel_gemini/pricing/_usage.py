"""``Usage``: what one request used, as its span reports it."""

from __future__ import annotations

import math
from typing import Final, NamedTuple, cast

from otel_gemini._limits import (
    MAX_SECONDS_PER_REQUEST,
    MAX_TOKENS_PER_REQUEST,
    MAX_UNITS_PER_REQUEST,
)


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
_COUNTS: Final = len(COUNT_FIELDS)
_IMAGES: Final = Usage._fields.index("output_images")
_SECONDS: Final = tuple(Usage._fields.index(name) for name in SECONDS_FIELDS)
_INT_ONLY: Final = {int}
# implausible_reason's usual case names the seconds fields: a new one must be added there.
assert SECONDS_FIELDS == ("audio_input_seconds", "audio_output_seconds", "output_video_seconds")


def implausible_reason(usage: Usage) -> str | None:
    """Why ``usage`` cannot be what one request billed, or ``None`` when it can.

    A count that is negative, not a whole number, not finite, or above what any Gemini
    request can bill (``MAX_TOKENS_PER_REQUEST``…) comes from a broken or hostile sender:
    priced as given, 2**63 - 1 tokens would be $25 trillion in the store and in Langfuse.
    """
    # Typed as counts; what they really are (a bool, a string…) is what is checked here.
    counts = cast("tuple[int, ...]", usage[:_COUNTS])
    images = usage[_IMAGES]
    if (
        # The usual case, in a few C-level passes (this runs for every priced span): whole
        # counts (exact type int: a bool is no count) in range, no seconds measured. Any
        # other usage is checked field by field below.
        set(map(type, counts)) == _INT_ONLY
        and min(counts) >= 0
        and max(counts) <= MAX_TOKENS_PER_REQUEST
        and type(images) is int
        and 0 <= images <= MAX_UNITS_PER_REQUEST
        and usage.audio_input_seconds is None
        and usage.audio_output_seconds is None
        and usage.output_video_seconds == 0
    ):
        return None
    for index in range(_COUNTS + 1):
        position = index if index < _COUNTS else _IMAGES
        value = usage[position]
        if type(value) is int and 0 <= value <= (
            MAX_TOKENS_PER_REQUEST if index < _COUNTS else MAX_UNITS_PER_REQUEST
        ):
            continue
        problem = _count_problem(Usage._fields[position], value, index < _COUNTS)
        if problem is not None:
            return problem
    for position in _SECONDS:
        seconds = usage[position]
        if _plausible_seconds(seconds):
            continue
        return f"{Usage._fields[position]} {seconds!r} is not 0 to {MAX_SECONDS_PER_REQUEST:.0f} s"
    return None


def _plausible_seconds(seconds: object) -> bool:
    return seconds is None or (
        isinstance(seconds, (int, float)) and 0 <= seconds <= MAX_SECONDS_PER_REQUEST
    )


def _count_problem(name: str, value: object, tokens: bool) -> str | None:
    limit = MAX_TOKENS_PER_REQUEST if tokens else MAX_UNITS_PER_REQUEST
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{name} is {value!r}, not a count"
        if value.is_integer() and 0 <= value <= limit:
            return None  # a whole float (Usage(input_tokens=10.0)): as good as an int
        if not value.is_integer():
            return f"{name} {value!r} is not a whole number"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = f"{value:.0f}" if isinstance(value, float) else str(value)
        if value < 0:
            return f"{name} {shown} is negative"
        return f"{name} {shown} exceeds {limit:,} (more than any Gemini request can bill)"
    return f"{name} {type(value).__name__} is not a count"
