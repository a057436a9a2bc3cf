"""Seconds of Live API audio, measured from the PCM bytes actually streamed.

The Live API streams raw 16-bit mono PCM (``audio/pcm;rate=16000`` in, ``audio/pcm;rate=24000``
out), so a chunk lasts ``bytes / (2 * rate)`` seconds. We count bytes per rate and convert once
at the end, so the sum of many chunks has no rounding drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

BYTES_PER_SAMPLE = 2  # 16-bit mono
INPUT_RATE = 16_000  # the Live API's input rate when the mime type names none
OUTPUT_RATE = 24_000  # the Live API's output rate when the mime type names none
_PCM_TYPES = ("audio/pcm", "audio/l16")


@lru_cache(maxsize=64)
def pcm_rate(mime_type: str, default_rate: int) -> int | None:
    """The sample rate of a PCM mime type (``audio/pcm;rate=24000``), ``default_rate`` when it
    names none, ``None`` when the audio is not raw PCM (its duration is not in its size)."""
    kind, _, parameters = mime_type.partition(";")
    if kind.strip().lower() not in _PCM_TYPES:
        return None
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "rate":
            try:
                rate = int(value.strip())
            except ValueError:
                return None
            return rate if rate > 0 else None
    return default_rate


def _field(obj: Any, *names: str) -> Any:
    if isinstance(obj, dict):
        for name in names:
            if name in obj:
                return obj[name]
        return None
    return getattr(obj, names[0], None)


def data_length(data: Any) -> int:
    """Decoded byte length of blob data: bytes, or a base64 string (as dicts may carry)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    if isinstance(data, str):
        padding = len(data) - len(data.rstrip("="))
        return len(data) * 3 // 4 - padding
    return 0


def blob_pcm(blob: Any, default_rate: int) -> tuple[int, int] | None:
    """``(rate, bytes)`` of a ``Blob`` (or blob dict) holding PCM audio, else None."""
    if blob is None:
        return None
    mime_type = _field(blob, "mime_type", "mimeType")
    if not isinstance(mime_type, str):
        return None
    rate = pcm_rate(mime_type, default_rate)
    if rate is None:
        return None
    size = data_length(_field(blob, "data"))
    return (rate, size) if size else None


def content_blobs(turns: Any) -> Iterator[Any]:
    """The ``inline_data`` blobs in ``send_client_content(turns=...)`` (Content, dict, lists)."""
    items: Iterable[Any] = turns if isinstance(turns, (list, tuple)) else (turns,)
    for content in items:
        parts = _field(content, "parts")
        for part in parts or ():
            inline = _field(part, "inline_data", "inlineData")
            if inline is not None:
                yield inline


# (mime type, default rate) -> rate, 0 for audio that is not PCM: a plain dict lookup per
# received chunk (the hot path), filled by pcm_rate().
_RATES: dict[tuple[str, int], int] = {}


class AudioMeter:
    """Bytes of PCM by sample rate; :attr:`seconds` is their total duration."""

    __slots__ = ("_bytes_by_rate",)

    def __init__(self) -> None:
        self._bytes_by_rate: dict[int, int] = {}

    def add(self, rate: int, size: int) -> None:
        self._bytes_by_rate[rate] = self._bytes_by_rate.get(rate, 0) + size

    def add_blob(self, blob: Any, default_rate: int) -> bool:
        """Counts a received ``types.Blob`` if it is PCM audio; whether it was."""
        mime_type = blob.mime_type
        data = blob.data
        if not mime_type or not data:
            return False
        key = (mime_type, default_rate)
        rate = _RATES.get(key)
        if rate is None:
            rate = pcm_rate(mime_type, default_rate) or 0
            if len(_RATES) < 256:
                _RATES[key] = rate
        if not rate:
            return False
        size = len(data) if type(data) is bytes else data_length(data)
        self._bytes_by_rate[rate] = self._bytes_by_rate.get(rate, 0) + size
        return True

    @property
    def seconds(self) -> float:
        return sum(size / (BYTES_PER_SAMPLE * rate) for rate, size in self._bytes_by_rate.items())

    def __bool__(self) -> bool:
        return bool(self._bytes_by_rate)
