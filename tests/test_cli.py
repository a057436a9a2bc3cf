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


def test_the_command_line_does_not_load_google_genai_to_print_help() -> None:
    """``import otel_gemini`` loads its public names on first use, so the CLI starts fast."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, otel_gemini.cli\n"
            "try:\n"
            "    otel_gemini.cli.main(['--help'])\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('google.genai' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines()[-1] == "False"
