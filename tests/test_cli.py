"""The ``otel-gemini`` command line as a user runs it: a subprocess."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

from otel_gemini.cli import _COMMANDS

COMMANDS = (
    "budgets",
    "collector-config",
    "costs",
    "demo",
    "gateway",
    "health",
    "prices",
    "serve",
)


def _words(text: str) -> str:
    # argparse wraps help to the terminal width; compare the words, not the line breaks.
    return " ".join(text.split())


def test_help_lists_every_command_with_its_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    listed = _words(done.stdout)
    assert set(COMMANDS) <= set(_COMMANDS)  # none lost; new ones are checked too
    for command, module_name in _COMMANDS.items():
        help_text = importlib.import_module(module_name).HELP
        assert f" {command} {_words(help_text)}" in listed


@pytest.mark.parametrize(
    ("args", "unbuffered"),
    [
        (["prices"], False),
        (["prices"], True),  # PYTHONUNBUFFERED: the write itself fails, not the flush
        (["--help"], False),
        (["--version"], False),
    ],
)
def test_a_reader_that_goes_away_gets_no_traceback(args: list[str], unbuffered: bool) -> None:
    """``otel-gemini prices | head -1``, made deterministic: the reader is gone before the
    command writes anything. Exit status 141 (128 + SIGPIPE), as a shell reports it for a
    command killed by SIGPIPE."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = subprocess.run(
            [sys.executable, "-m", "otel_gemini.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            env=env,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert process.stderr == b""  # no traceback, no "Exception ignored"
    assert process.returncode == 141


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
