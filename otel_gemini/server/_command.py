"""``otel-gemini serve``: the observability HTTP API (costs, latency, health) and the
dashboard page, with uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any

from otel_gemini import _listen_security

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from otel_gemini.aggregate import CostAnswers
    from otel_gemini.export import LangfuseExporter

HELP = (
    "Serve the cost, latency and health HTTP API (/api/observability/...) and the "
    "dashboard page (/)."
)


# uvicorn's names (uvicorn.config.LOG_LEVELS), listed here so --help stays fast.
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (got {text})")
    return value


def _log_level(text: str) -> str:
    if text.lower() not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r} (use one of {', '.join(_LOG_LEVELS)})"
        )
    return text.lower()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " Answers from the local cost store (--db, default OTEL_GEMINI_COST_DB) and, "
        "with LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY / LANGFUSE_BASE_URL set, from "
        "Langfuse's Metrics API (source=langfuse), whose exporter health it also reports."
    )
    parser.add_argument(
        "--host",
        default=_listen_security.LOOPBACK_HOST,
        help=f"address (default {_listen_security.LOOPBACK_HOST})",
    )
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    parser.add_argument("--db", help="the cost store (default: OTEL_GEMINI_COST_DB or its default)")
    parser.add_argument(
        "--source",
        choices=("local", "langfuse"),
        help="the source when a request names none (default: local)",
    )
    parser.add_argument(
        "--budgets",
        help="budget rules (TOML) answered at /api/observability/budgets "
        "(default: OTEL_GEMINI_BUDGETS)",
    )
    parser.add_argument(
        "--no-export",
        action="store_true",
        help="do not run a Langfuse exporter on the spool (the health endpoint then "
        "answers 503 unknown)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default="info",
        help=f"uvicorn's log level: {', '.join(_LOG_LEVELS)} (default info)",
    )
    parser.add_argument(
        "--open",
        action="store_true",
        help="open the dashboard in the default web browser once the server listens",
    )
    _listen_security.add_arguments(parser)


def build(args: argparse.Namespace) -> tuple[Starlette, CostAnswers, LangfuseExporter | None]:
    """The app ``serve`` runs, its answers and its exporter (the caller closes both).

    Raises ``LangfuseConfigError`` for a bad Langfuse setting.
    """
    import os

    from otel_gemini.aggregate import CostAnswers, path_from
    from otel_gemini.budgets import budget_status, rules_from
    from otel_gemini.export import LangfuseExporter
    from otel_gemini.health import HealthReporter
    from otel_gemini.server._app import BudgetAnswer, observability_app

    rules = rules_from(getattr(args, "budgets", None) or None, os.environ)
    budgets: BudgetAnswer | None = None
    if rules is not None:
        db = path_from(args.db or None, os.environ)
        budgets = lambda: budget_status(rules, db)  # noqa: E731
    answers = CostAnswers.from_env(args.db, default_source=args.source)
    if answers.local is not None and answers.local.rollups is not None:
        # A store of a million rows written without rollups takes tens of seconds to
        # build: in the background, answers reading the raw rows (exact) meanwhile.
        answers.local.rollups.start_building()
    exporter: LangfuseExporter | None = None
    if answers.langfuse is not None and not args.no_export:
        # An exporter of our own on the spool: its probe reports whether Langfuse is
        # reachable and takes the keys, and it sends what stopped processes left behind.
        try:
            exporter = LangfuseExporter()
        except BaseException:
            answers.close()
            raise
    # The same reporter as configure()'s. Without an exporter, serve runs no pipeline at
    # all (it only reads), so there is nothing to judge: its health is "unknown".
    reporter = None
    if exporter is not None:
        sections, conditions = _cost_store_health(answers)
        reporter = HealthReporter(exporter, sections=sections, conditions=conditions)
    return observability_app(answers, reporter, budgets=budgets), answers, exporter


def _cost_store_health(answers: CostAnswers) -> tuple[dict[str, Any], Any]:
    """Health's view of the drops the local store recorded (whichever process wrote them):
    a ``cost_store`` section, and DEGRADED while the last day had any, or while its
    rollups cannot be updated."""
    import time

    from otel_gemini.aggregate import store_drops
    from otel_gemini.health import HealthStatus

    local = answers.local
    if local is None:
        return {}, None
    path = local.path

    def section() -> object:
        found = store_drops(path, time.time())
        return found[0] if found is not None else None

    rollups = local.rollups

    def conditions(_stats: object) -> list[tuple[HealthStatus, str]]:
        found = store_drops(path, time.time())
        reasons = [*(found[1] if found else []), *(rollups.problems() if rollups else [])]
        return [(HealthStatus.DEGRADED, reason) for reason in reasons]

    return {"cost_store": section}, conditions


def run(args: argparse.Namespace) -> int:
    from otel_gemini._extras import require_extra

    require_extra("server", "otel-gemini serve")
    import uvicorn

    from otel_gemini._command_errors import listening_socket
    from otel_gemini._http_limits import GuardedServer, RequestLimit, uvicorn_options
    from otel_gemini._langfuse_settings import langfuse_from_env
    from otel_gemini.export import resolve_settings

    # Settings first (a bad one exits 2 from cli.main, naming it), then the port, then
    # the exporter: nothing starts until all three are good, and the banner below is
    # printed only once the address is really ours. Who may connect comes first: a
    # non-loopback address without a token stops here.
    security = _listen_security.from_arguments(args, args.host)
    limits = _listen_security.ConnectionLimits(
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        idle_timeout=args.idle_timeout,
    )
    if langfuse_from_env() is not None and not args.no_export:
        resolve_settings()
    sock = listening_socket(args.host, args.port, "--port")
    try:
        app, answers, exporter = build(args)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    _listen_security.warn_if_open(security, args.host, "serve")
    base = f"{security.scheme}://{_url_host(args.host)}:{port}"
    print(
        f"otel-gemini serve: {base}/api/observability/ (costs, latency, health), "
        f"dashboard {base}/; local store {answers.local.path if answers.local else '-'}; "
        f"Langfuse {'on' if answers.langfuse else 'not configured'}",
        file=sys.stderr,
        flush=True,
    )
    if args.open:
        _open_in_browser(f"{base}/")
    try:
        config = uvicorn.Config(
            # The token check covers every path but the liveness one (the page included).
            RequestLimit(security.wrap(app), limits),
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            **uvicorn_options(limits),
            **security.uvicorn_options(),
        )
        # config.host/port: only for its "running on" log
        server = GuardedServer(config, handshake_timeout=limits.header_timeout)
        with contextlib.suppress(KeyboardInterrupt):
            # uvicorn re-raises the Ctrl-C / SIGINT it shut down on once it is done
            # (uvicorn.run swallows it the same way): a clean stop, exit 0.
            server.run(sockets=[sock])
    finally:
        sock.close()
        answers.close()
        if exporter is not None:
            exporter.shutdown(5000)
    return 0


def _open_in_browser(url: str) -> None:
    """Opens ``url`` in the user's browser without holding up the server: the socket
    already listens, so the browser's request waits for uvicorn to accept it. A machine
    without a browser just gets the URL, which the banner has printed."""
    import threading
    import webbrowser

    def open_it() -> None:
        try:
            opened = webbrowser.open(url)
        except Exception:  # webbrowser.Error, or a browser launcher failing
            opened = False
        if not opened:
            print(f"otel-gemini serve: no web browser to open here; open {url}", file=sys.stderr)

    threading.Thread(target=open_it, name="otel-gemini-open-browser", daemon=True).start()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
