"""What the Live API tests send: microphone audio, 16-bit mono PCM at 16 kHz."""

from __future__ import annotations

from google.genai import types

PCM_16K = "audio/pcm;rate=16000"


def pcm(seconds: float) -> types.Blob:
    """``seconds`` of 16 kHz PCM (a constant non-silent sample) as a realtime-input blob."""
    return types.Blob(data=b"\x01\x00" * round(seconds * 16_000), mime_type=PCM_16K)
