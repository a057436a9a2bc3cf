"""How the ``otel-gemini`` commands fail: one line naming the setting, and an exit status.

Exit statuses (also in ``otel-gemini --help`` and docs/configuration.md):

- 0: done;
- 1: a runtime failure (a service did not answer, the cost store cannot be read, the
  demo's workload failed);
- 2: a usage or configuration error (a bad option, a ``LANGFUSE_*`` / ``OTEL_GEMINI_*``
  setting that cannot be used, a port already taken): fix the named setting and rerun;
- ``health`` answers with the status instead: 0 healthy, 1 degraded, 2 unhealthy,
  3 unknown (and 2 for a usage or configuration error, which leaves nothing healthy);
- 130: interrupted (Ctrl-C); 141: the reader of the output went away.

Kept apart from ``cli.py``: ``python -m otel_gemini.cli`` runs that file as ``__main__``,
and an exception class defined there would not be the one the commands raise.
"""

from __future__ import annotations

import errno
import socket

EXIT_RUNTIME = 1
EXIT_USAGE = 2

EXIT_STATUS_HELP = """\
exit status:
  0    done
  1    a runtime failure (a service did not answer, the cost store cannot be read)
  2    a usage or configuration error: a bad option, a LANGFUSE_* or OTEL_GEMINI_*
       setting that cannot be used, a port already in use (the message names it)
  130  interrupted; 141 the reader of the output went away
  `health` exits with the pipeline's status: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown
"""


class CommandError(Exception):
    """A command cannot go on: ``otel-gemini`` prints ``message`` as one line (after the
    command's name) and exits with ``exit_code``, without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(error: BaseException) -> tuple[str, int] | None:
    """The line and exit status for a configuration or input error raised by the library
    (``LangfuseConfigError``, ``PriceTableError``, ``CostStoreError``, ``SpoolBusyError``,
    ``BudgetConfigError``);
    ``None`` for anything else, which is a bug and keeps its traceback."""
    # Imported here: the error path may be taken before (or without) these modules loading.
    from otel_gemini._extras import MissingExtraError
    from otel_gemini._langfuse_settings import LangfuseConfigError
    from otel_gemini.aggregate import CostStoreError
    from otel_gemini.budgets import BudgetConfigError
    from otel_gemini.export import SpoolBusyError
    from otel_gemini.pricing import PriceTableError

    if isinstance(error, CommandError):
        return str(error), error.exit_code
    if isinstance(error, MissingExtraError):
        return str(error), EXIT_USAGE
    if isinstance(error, PriceTableError):
        return "; ".join(error.problems), EXIT_USAGE
    if isinstance(error, (LangfuseConfigError, SpoolBusyError, BudgetConfigError)):
        return " ".join(str(error).split()), EXIT_USAGE
    if isinstance(error, CostStoreError):
        return " ".join(str(error).split()), EXIT_RUNTIME
    return None


def listening_socket(host: str, port: int, option: str) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, or :class:`CommandError` naming
    ``option`` when the port is taken or the address cannot be used.

    Bound before the command announces its address, so what it prints is true."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn does: a restart may reuse a port whose old connections linger in
        # TIME_WAIT; a port another process listens on is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except socket.gaierror as error:  # the host, not the port, is what cannot be used
        sock.close()
        raise CommandError(f"--host {host}: cannot listen there: {error.strerror}") from None
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise CommandError(f"{option} {port}: {host}:{port} is already in use") from None
        reason = error.strerror or str(error)
        raise CommandError(f"{option} {port}: cannot listen on {host}:{port}: {reason}") from None
    except BaseException:
        sock.close()
        raise
    return sock


def check_port_free(host: str, port: int | None, option: str) -> None:
    """:func:`listening_socket`, closed again at once: for servers that bind by themselves.
    Port 0 (any free port) and ``None`` (off) are not checked."""
    if port:
        listening_socket(host, port, option).close()
