"""Model-name normalisation shared by instrumentation and pricing.

The SDK accepts ``models/gemini-2.5-flash``, ``publishers/google/models/…``,
``projects/p/locations/l/publishers/google/models/…`` and ``google/gemini-…``; Langfuse's
model matching (and our price table) want the bare name.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=512)
def bare_model_name(name: str) -> str:
    """The id without resource prefix: ``models/gemini-2.5-flash`` → ``gemini-2.5-flash``."""
    name = name.strip()
    marker = name.rfind("models/")
    if marker != -1:
        return name[marker + len("models/") :]
    if name.startswith("google/"):
        return name[len("google/") :]
    return name
