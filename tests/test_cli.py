"""The ``otel-gemini`` command line as a user runs it: a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

COMMANDS = ("collector-config", "costs", "demo", "gateway", "health", "prices", "serve")


def test_help_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for command in COMMANDS:
        assert f"    {command}" in done.stdout


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    """``otel-gemini prices | head -1``, made deterministic: the reader is gone before the
    command writes anything."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "otel_gemini.cli", "prices"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert process.returncode == 141
    assert b"Traceback" not in process.stderr
