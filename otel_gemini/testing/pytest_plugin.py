"""pytest fixtures for testing code that calls Gemini or exports to Langfuse.

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures are available in any
project that has ``otel-gemini`` installed.
"""

from __future__ import annotations

# --- fake Gemini fixtures ---

# --- fake Langfuse fixtures ---
