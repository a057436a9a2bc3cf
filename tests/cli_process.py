"""``otel-gemini`` run in another process, as a second process reading a store would."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

COMMAND = (sys.executable, "-m", "otel_gemini.cli")


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``otel-gemini ARGUMENTS`` in a subprocess importing this checkout."""
    return subprocess.run(
        [*COMMAND, *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )


def iso(ns: int) -> str:
    """A ``--from`` / ``--to`` value for nanoseconds since the epoch."""
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()
