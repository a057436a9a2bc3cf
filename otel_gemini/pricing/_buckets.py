"""Usage → mutually exclusive buckets, the keys of Langfuse's usage and cost details.

Spans report totals and overlapping subsets (cached ⊂ input, audio ⊂ input, thinking ⊂
output…). Billing needs each token counted once, at one price, so we split them into buckets
that add up to the totals. Every key contains ``input`` or ``output`` because Langfuse sums
usage types by those substrings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

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


# --- the split, as data ------------------------------------------------------------------------
# Read by split_tokens below and by the OTTL generator (collector/_ottl.py), so the Collector
# prices with the same rules. Names are Usage's count fields, plus the derived counts that
# ``Rest`` steps name. Steps run in order on counts already clamped at zero.


@dataclass(frozen=True)
class Default:
    """A total reported as 0 is taken as the largest of ``sums`` (each a sum of counts)."""

    field: str
    sums: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Cap:
    """``field`` is at most ``within`` less the ``less`` counts already taken from it.

    A subset larger than that is inconsistent usage: it is cut down and reported as clamped.
    """

    field: str
    within: str
    less: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    """``parts`` adding up to more than ``within`` is inconsistent usage; nothing is cut."""

    parts: tuple[str, ...]
    within: str


@dataclass(frozen=True)
class Rest:
    """A derived count ``name``: ``base`` less ``less`` (0 if that is negative), then at most
    ``within`` less ``within_less`` (a normal share, not an inconsistency)."""

    name: str
    base: str
    less: tuple[str, ...]
    within: str | None = None
    within_less: tuple[str, ...] = ()


SplitStep = Default | Cap | Check | Rest

_MODALITIES_IN: Final = (
    "text_input_tokens",
    "image_input_tokens",
    "audio_input_tokens",
    "video_input_tokens",
)
_CACHED: Final = "cache_read_input_tokens"
_CACHED_AUDIO: Final = "audio_cache_read_input_tokens"
_CACHED_IMAGE: Final = "image_cache_read_input_tokens"
_CACHED_VIDEO: Final = "video_cache_read_input_tokens"
_TOOL: Final = "tool_use_prompt_tokens"
_REASONING: Final = "reasoning_output_tokens"
_AUDIO_OUT: Final = "audio_output_tokens"
_IMAGE_OUT: Final = "image_output_tokens"

SPLIT_STEPS: Final[tuple[SplitStep, ...]] = (
    Default("input_tokens", (_MODALITIES_IN, (_CACHED, _TOOL))),
    Cap(_CACHED, "input_tokens"),
    Cap(_CACHED_AUDIO, _CACHED),
    Cap(_CACHED_IMAGE, _CACHED, (_CACHED_AUDIO,)),
    Cap(_CACHED_VIDEO, _CACHED, (_CACHED_AUDIO, _CACHED_IMAGE)),
    Cap(_TOOL, "input_tokens", (_CACHED,)),
    Check(_MODALITIES_IN, "input_tokens"),
    Rest("fresh", "input_tokens", (_CACHED, _TOOL)),
    # Modality counts include their cached part. Cache reads reported without a modality may
    # be of any of them, so what a modality has beyond its known cache is capped by what is
    # left: the dearer modalities (audio, then video, then image) are billed fresh first.
    Rest("fresh_audio", "audio_input_tokens", (_CACHED_AUDIO,), "fresh"),
    Rest("fresh_video", "video_input_tokens", (_CACHED_VIDEO,), "fresh", ("fresh_audio",)),
    Rest(
        "fresh_image",
        "image_input_tokens",
        (_CACHED_IMAGE,),
        "fresh",
        ("fresh_audio", "fresh_video"),
    ),
    # Thinking is counted in the text modality by our instrumentation, on its own by others:
    # max(text, thinking) + image + audio.
    Default(
        "output_tokens",
        (
            ("text_output_tokens", _IMAGE_OUT, _AUDIO_OUT),
            (_REASONING, _IMAGE_OUT, _AUDIO_OUT),
        ),
    ),
    Cap(_REASONING, "output_tokens"),
    Cap(_AUDIO_OUT, "output_tokens", (_REASONING,)),
    Cap(_IMAGE_OUT, "output_tokens", (_REASONING, _AUDIO_OUT)),
)
"""How usage is cut into buckets, in order (see :class:`Default`, :class:`Cap`,
:class:`Check`, :class:`Rest`)."""

BUCKET_SOURCES: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    (INPUT, "fresh", ("fresh_audio", "fresh_video", "fresh_image")),
    (INPUT_IMAGE, "fresh_image", ()),
    (INPUT_VIDEO, "fresh_video", ()),
    (INPUT_AUDIO, "fresh_audio", ()),
    (INPUT_TOOL_USE, _TOOL, ()),
    (INPUT_CACHED, _CACHED, (_CACHED_AUDIO,)),
    (INPUT_CACHED_AUDIO, _CACHED_AUDIO, ()),
    (OUTPUT, "output_tokens", (_REASONING, _AUDIO_OUT, _IMAGE_OUT)),
    (OUTPUT_REASONING, _REASONING, ()),
    (OUTPUT_IMAGE, _IMAGE_OUT, ()),
    (OUTPUT_AUDIO, _AUDIO_OUT, ()),
)
"""Each token bucket, in :data:`TOKEN_BUCKETS` order: a count less other counts, after
:data:`SPLIT_STEPS`."""

PROMPT_SIZE: Final = "input_tokens"
"""The count (after :data:`SPLIT_STEPS`) that picks the prompt-size price tier."""


# --- split_tokens: the steps compiled to Python ------------------------------------------------
# An interpreter walking SPLIT_STEPS per call costs ~8× the hand-written function (7.3 vs
# 0.9 µs measured), and pricing runs once per span. So, as the standard library's dataclasses
# and namedtuple do, the steps are turned once into the source of a plain function (one local
# per count, an ``if`` per step) and compiled at import: the data stays the one statement of
# the rules, the function runs as fast as one written by hand. ``split_source()`` shows it.

DERIVED_COUNTS: Final = tuple(step.name for step in SPLIT_STEPS if isinstance(step, Rest))


def _minus(name: str, less: tuple[str, ...]) -> str:
    return " - ".join((name, *less))


def _step_source(step: SplitStep) -> list[str]:
    if isinstance(step, Default):
        sums = ", ".join(" + ".join(s) for s in step.sums)
        return [f"if not {step.field}:", f"    {step.field} = max({sums})"]
    if isinstance(step, Cap):
        bound = _minus(step.within, step.less)
        return [f"if {step.field} > {bound}:", f"    {step.field}, clamped = {bound}, True"]
    if isinstance(step, Check):
        return [f"if {' + '.join(step.parts)} > {step.within}:", "    clamped = True"]
    # Comparisons rather than min()/max(): this runs once per priced span.
    lines = [f"{step.name} = {_minus(step.base, step.less)}", f"if {step.name} < 0:"]
    lines.append(f"    {step.name} = 0")
    if step.within is not None:
        bound = _minus(step.within, step.within_less)
        lines += [f"if {step.name} > {bound}:", f"    {step.name} = {bound}"]
    return lines


def split_source() -> str:
    """The Python source of :func:`split_tokens`, generated from :data:`SPLIT_STEPS` and
    :data:`BUCKET_SOURCES`."""
    body = [
        "counts = usage[:15]",
        "clamped = min(counts) < 0",
        "if clamped:",
        "    counts = tuple(max(count, 0) for count in counts)",
        f"({', '.join(COUNT_FIELDS)},) = counts",
    ]
    for step in SPLIT_STEPS:
        body += _step_source(step)
    body.append("result = []")
    for bucket, base, less in BUCKET_SOURCES:
        body += [f"if value := {_minus(base, less)}:", f"    result.append(({bucket!r}, value))"]
    body.append(f"return result, {PROMPT_SIZE}, clamped")
    return "def split_tokens(usage):\n" + "".join(f"    {line}\n" for line in body)


def _compile_split() -> Callable[[Usage], tuple[list[tuple[str, int]], int, bool]]:
    names: dict[str, Any] = {}
    exec(compile(split_source(), "<otel_gemini.pricing split_tokens>", "exec"), names)
    function: Callable[[Usage], tuple[list[tuple[str, int]], int, bool]] = names["split_tokens"]
    function.__doc__ = """The non-zero token buckets of ``usage``, in :data:`TOKEN_BUCKETS` order.

    Returns the buckets, the prompt size (all input tokens, which picks the price tier) and
    whether the usage was inconsistent (a subset larger than its total, or a negative count)
    and had to be clamped. A missing total (0) is taken as the sum of its parts rather than
    clamping the parts to nothing. Generated from :data:`SPLIT_STEPS` (see
    :func:`split_source`).
    """
    function.__module__ = __name__
    return function


assert tuple(bucket for bucket, _, _ in BUCKET_SOURCES) == TOKEN_BUCKETS
# split_tokens slices the token counts off Usage by position: they must lead its fields.
assert Usage._fields[: len(COUNT_FIELDS)] == COUNT_FIELDS and len(COUNT_FIELDS) == 15
split_tokens: Final = _compile_split()


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
