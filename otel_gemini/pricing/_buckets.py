"""Usage → mutually exclusive buckets, the keys of Langfuse's usage and cost details.

Spans report totals and overlapping subsets (cached ⊂ input, audio ⊂ input, thinking ⊂
output…). Billing needs each token counted once, at one price, so we split them into buckets
that add up to the totals. Every key contains ``input`` or ``output`` because Langfuse sums
usage types by those substrings.
"""

from __future__ import annotations

from typing import Final

from otel_gemini import _money as money
from otel_gemini.pricing._usage import COUNT_FIELDS, Usage

INPUT: Final = "input"  # text (and document) input, not cached, not tool-use
INPUT_IMAGE: Final = "input_image"
INPUT_VIDEO: Final = "input_video"
INPUT_AUDIO: Final = "input_audio"
INPUT_TOOL_USE: Final = "input_tool_use"  # tool results fed back; billed as input
INPUT_CACHED: Final = "input_cached"  # cache reads of every modality but audio
INPUT_CACHED_AUDIO: Final = "input_cached_audio"
OUTPUT: Final = "output"  # text output, thinking excluded
OUTPUT_REASONING: Final = "output_reasoning"
OUTPUT_IMAGE: Final = "output_image"  # image output tokens (Gemini image models)
OUTPUT_AUDIO: Final = "output_audio"
OUTPUT_IMAGE_COUNT: Final = "output_image_count"  # generated images (Imagen)
OUTPUT_VIDEO_SECONDS: Final = "output_video_seconds"  # generated video (Veo)
TOTAL: Final = money.TOTAL

TOKEN_BUCKETS: Final = (
    INPUT,
    INPUT_IMAGE,
    INPUT_VIDEO,
    INPUT_AUDIO,
    INPUT_TOOL_USE,
    INPUT_CACHED,
    INPUT_CACHED_AUDIO,
    OUTPUT,
    OUTPUT_REASONING,
    OUTPUT_IMAGE,
    OUTPUT_AUDIO,
)
UNIT_BUCKETS: Final = (OUTPUT_IMAGE_COUNT, OUTPUT_VIDEO_SECONDS)
ALL_BUCKETS: Final = TOKEN_BUCKETS + UNIT_BUCKETS

# split_tokens slices the token counts off Usage by position (fast, and typed as ints).
assert len(COUNT_FIELDS) == 15


def split_tokens(usage: Usage) -> tuple[list[tuple[str, int]], int, bool]:
    """The non-zero token buckets of ``usage``, in :data:`TOKEN_BUCKETS` order.

    Returns the buckets, the prompt size (all input tokens, which picks the price tier) and
    whether the usage was inconsistent (a subset larger than its total, or a negative count)
    and had to be clamped. A missing total (0) is taken as the sum of its parts rather than
    clamping the parts to nothing.
    """
    counts: tuple[int, ...] = usage[:15]
    clamped = min(counts) < 0
    if clamped:
        counts = tuple(max(count, 0) for count in counts)
    (
        total_in,
        total_out,
        cached,
        reasoning,
        tool,
        text_in,
        image_in,
        audio_in,
        video_in,
        text_out,
        image_out,
        audio_out,
        cached_audio,
        cached_image,
        cached_video,
    ) = counts

    if not total_in:
        total_in = max(text_in + image_in + audio_in + video_in, cached + tool)
    if cached > total_in:
        cached, clamped = total_in, True
    if cached_audio + cached_image + cached_video > cached:
        clamped = True
        cached_audio = min(cached_audio, cached)
        cached_image = min(cached_image, cached - cached_audio)
        cached_video = min(cached_video, cached - cached_audio - cached_image)
    if tool > total_in - cached:
        tool, clamped = total_in - cached, True
    if text_in + image_in + audio_in + video_in > total_in:
        clamped = True
    fresh = total_in - cached - tool
    # Modality counts include their cached part. Cache reads reported without a modality may
    # be of any of them, so what a modality has beyond its known cache is capped by what is
    # left: the dearer modalities (audio, then video, then image) are billed fresh first.
    audio = min(audio_in - cached_audio, fresh) if audio_in > cached_audio else 0
    video = min(video_in - cached_video, fresh - audio) if video_in > cached_video else 0
    image = min(image_in - cached_image, fresh - audio - video) if image_in > cached_image else 0
    text = fresh - audio - video - image

    if not total_out:
        # Thinking is counted in the text modality by our instrumentation, on its own by others.
        total_out = max(text_out, reasoning) + image_out + audio_out
    if reasoning > total_out:
        reasoning, clamped = total_out, True
    if audio_out > total_out - reasoning:
        audio_out, clamped = total_out - reasoning, True
    if image_out > total_out - reasoning - audio_out:
        image_out, clamped = total_out - reasoning - audio_out, True
    text_out = total_out - reasoning - audio_out - image_out

    result = []
    if text:
        result.append((INPUT, text))
    if image:
        result.append((INPUT_IMAGE, image))
    if video:
        result.append((INPUT_VIDEO, video))
    if audio:
        result.append((INPUT_AUDIO, audio))
    if tool:
        result.append((INPUT_TOOL_USE, tool))
    if cached > cached_audio:
        result.append((INPUT_CACHED, cached - cached_audio))
    if cached_audio:
        result.append((INPUT_CACHED_AUDIO, cached_audio))
    if text_out:
        result.append((OUTPUT, text_out))
    if reasoning:
        result.append((OUTPUT_REASONING, reasoning))
    if image_out:
        result.append((OUTPUT_IMAGE, image_out))
    if audio_out:
        result.append((OUTPUT_AUDIO, audio_out))
    return result, total_in, clamped


def unit_buckets(usage: Usage) -> list[tuple[str, int]]:
    """The non-zero unit buckets of ``usage``: images generated, video seconds (rounded)."""
    result = []
    if usage.output_images > 0:
        result.append((OUTPUT_IMAGE_COUNT, int(usage.output_images)))
    if usage.output_video_seconds > 0:
        result.append((OUTPUT_VIDEO_SECONDS, round(usage.output_video_seconds)))
    return result


def usage_buckets(usage: Usage) -> dict[str, int]:
    """Every non-zero bucket of ``usage``, tokens then units, whether or not it has a price.

    What ``langfuse.observation.usage_details`` carries for a span that could not be priced
    (a priced span's buckets are the same ones, from the same two functions, via pricing).
    """
    tokens, _, _ = split_tokens(usage)
    return dict(tokens + unit_buckets(usage))
