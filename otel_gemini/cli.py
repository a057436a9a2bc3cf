"""The ``otel-gemini`` command line.

Each sub-command lives next to the code it drives, in a module exposing ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; this module only dispatches. Command
modules import their heavy dependencies inside ``run`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

from otel_gemini._command_errors import EXIT_STATUS_HELP, EXIT_USAGE, one_line
from otel_gemini._version import __version__

# name -> module implementing it
_COMMANDS: dict[str, str] = {
    "collector-config": "otel_gemini.collector._command",
    "budgets": "otel_gemini.budgets._command",
    "costs": "otel_gemini.aggregate._command",
    "demo": "otel_gemini._demo",
    "gateway": "otel_gemini.gateway._command",
    "health": "otel_gemini.health._command",
    "prices": "otel_gemini.pricing._command",
    "serve": "otel_gemini.server._command",
}


class _Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option (not the usage block):
    the same shape as every other configuration error the commands report."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="otel-gemini",
        description="Trace, price and export Google Gemini calls; answer cost questions.",
        epilog=EXIT_STATUS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"otel-gemini {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in _COMMANDS.items():
        module = cast(_Command, importlib.import_module(module_name))
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-gemini`` console script."""
    try:
        try:
            args = _parser().parse_args(argv)  # --help and --version print, then SystemExit
            try:
                return int(args._run(args))
            except Exception as error:
                # A configuration or input error: one line naming the setting, no traceback.
                reported = one_line(error)
                if reported is None:
                    raise  # a bug: the traceback is what a report needs
                message, code = reported
                print(f"otel-gemini {args.command}: {message}", file=sys.stderr)
                return code
        finally:
            # Flushed here rather than at interpreter exit, where a closed pipe would print
            # "Exception ignored ... BrokenPipeError" and exit 120.
            sys.stdout.flush()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`otel-gemini prices | head`): as the Python docs advise,
        # point stdout at devnull so the flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


if __name__ == "__main__":
    sys.exit(main())
