"""``otel-gemini gateway``: run the OTLP gateway until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from otel_gemini import _listen_security
from otel_gemini._listen_security import DEFAULT_RETRY_AFTER, LOOPBACK_HOST
from otel_gemini.gateway import _defaults as defaults

if TYPE_CHECKING:
    from otel_gemini.budgets import BudgetRules
    from otel_gemini.gateway._settings import GatewaySettings

HELP = (
    "Receive OTLP traces (gRPC and HTTP), price Gemini spans and export them to Langfuse "
    "through the durable spool."
)


def _port(text: str) -> int | None:
    if text.lower() == "off":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number or 'off': {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 or 'off' (got {text})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " Langfuse and the spool are configured by LANGFUSE_BASE_URL, "
        "LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, OTEL_GEMINI_SPOOL_DIR, "
        "OTEL_GEMINI_SPOOL_MAX_BYTES; prices by OTEL_GEMINI_PRICES; the local cost store "
        "by --db or OTEL_GEMINI_COST_DB."
    )
    parser.add_argument(
        "--host",
        default=LOOPBACK_HOST,
        help=f"address to listen on (default {LOOPBACK_HOST}; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--grpc-port",
        type=_port,
        default=defaults.GRPC_PORT,
        help=f"OTLP/gRPC port (default {defaults.GRPC_PORT}; 0: any free port; 'off')",
    )
    parser.add_argument(
        "--http-port",
        type=_port,
        default=defaults.HTTP_PORT,
        help="OTLP/HTTP port, also serving /api/observability/health "
        f"(default {defaults.HTTP_PORT}; 0; 'off')",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=defaults.MAX_REQUEST_BYTES,
        help="largest request body after decompression "
        f"(default {defaults.MAX_REQUEST_BYTES // defaults.MiB} MiB)",
    )
    parser.add_argument(
        "--max-inflight-bytes",
        type=int,
        default=0,
        help=f"memory for requests processed at once ({defaults.DECODED_PER_BYTE} bytes per "
        f"protobuf byte, {defaults.DECODED_PER_JSON_BYTE} per JSON byte); beyond it senders are "
        f"told to retry; at least {defaults.DECODED_PER_JSON_BYTE} x --max-request-bytes "
        f"(default {defaults.DECODED_PER_JSON_BYTE} x --max-request-bytes + "
        f"{defaults.INFLIGHT_HEADROOM // defaults.MiB} MiB: "
        f"{defaults.DEFAULT_INFLIGHT_BYTES // defaults.MiB} MiB)",
    )
    parser.add_argument(
        "--spool-high-water",
        type=float,
        default=defaults.SPOOL_HIGH_WATER,
        help="refuse requests (429 / RESOURCE_EXHAUSTED) once the spool is this full "
        f"(fraction of OTEL_GEMINI_SPOOL_MAX_BYTES, default {defaults.SPOOL_HIGH_WATER})",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=DEFAULT_RETRY_AFTER,
        help=f"seconds suggested to refused senders (default {DEFAULT_RETRY_AFTER:g})",
    )
    parser.add_argument(
        "--db",
        help="keep every priced span in this cost store too (what serve, costs and budgets "
        "read; default OTEL_GEMINI_COST_DB; none when neither is set, unless budgets are: "
        "then the store's default path)",
    )
    parser.add_argument(
        "--retention-days",
        help="days the cost store keeps rows, 0 for ever "
        "(default: OTEL_GEMINI_COST_RETENTION_DAYS or 90)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=10.0,
        help="seconds to finish requests and send the spool on SIGTERM (default 10)",
    )
    parser.add_argument(
        "--budgets",
        help="budget rules (TOML) evaluated over everything the gateway prices "
        "(default: OTEL_GEMINI_BUDGETS); needs the cost store",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the configuration (options, LANGFUSE_* and OTEL_GEMINI_* settings, "
        "prices, budgets, TLS and token files) and exit, starting nothing and binding no port",
    )
    _listen_security.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from otel_gemini._command_errors import CommandError, check_port_free
    from otel_gemini._extras import require_extra
    from otel_gemini.aggregate import (
        ENV_COST_DB,
        CostStore,
        CostStoreError,
        CostStoreSettings,
        check_writable,
        default_cost_db,
    )
    from otel_gemini.budgets import rules_from
    from otel_gemini.export import LangfuseExporter, check_spool, resolve_settings
    from otel_gemini.gateway._settings import GatewaySettings
    from otel_gemini.pricing import PriceTable

    # Who may connect first: a non-loopback address without a token stops here.
    security = _listen_security.from_arguments(args, args.host)
    try:
        settings = GatewaySettings(
            host=args.host,
            grpc_port=args.grpc_port,
            http_port=args.http_port,
            max_request_bytes=args.max_request_bytes,
            max_inflight_bytes=args.max_inflight_bytes,
            spool_high_water=args.spool_high_water,
            retry_after=args.retry_after,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            security=security,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    # Everything that can be wrong is checked before anything starts (a bad setting exits
    # 2 from cli.main, naming it): prices, Langfuse and spool settings, then the ports.
    prices = PriceTable.from_env()
    rules = rules_from(args.budgets or None, os.environ)
    # With budgets the store is their ledger: --db, OTEL_GEMINI_COST_DB or its default path.
    cost_db = (
        args.db
        or os.environ.get(ENV_COST_DB)
        or (str(default_cost_db(os.environ)) if rules is not None else None)
    )
    # Checked whether or not a store is kept: a bad value is named either way (exit 2).
    store_settings = CostStoreSettings.resolve(cost_db, retention_days=args.retention_days)
    if rules is not None:
        rules.check_retention(
            store_settings.retention_days, "--retention-days / OTEL_GEMINI_COST_RETENTION_DAYS"
        )
    # Room for every request in progress at once, so a hand-off is never refused.
    memory = 4 * settings.max_inflight_bytes
    exporter_settings = resolve_settings(memory_max_bytes=memory)  # LangfuseConfigError
    if args.check:
        # What starting would refuse about the paths, checked without creating anything.
        if cost_db:
            try:
                check_writable(store_settings.path)
            except CostStoreError as error:
                raise CommandError(f"--db / OTEL_GEMINI_COST_DB: {error}") from None
        check_spool(exporter_settings)  # LangfuseConfigError names the setting
        where = f"Langfuse {exporter_settings.base_url}; spool {exporter_settings.spool_dir}"
        print(_checked(settings, where, cost_db, rules), flush=True)
        return 0
    # Only now the server (grpc, uvicorn): checking a configuration needs neither.
    require_extra("gateway", "otel-gemini gateway")
    from otel_gemini.gateway._gateway import Gateway

    check_port_free(args.host, args.grpc_port, "--grpc-port")
    check_port_free(args.host, args.http_port, "--http-port")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _listen_security.warn_if_open(security, args.host, "gateway")
    cost_store = None
    if cost_db:
        try:
            cost_store = CostStore(
                store_settings.path, retention_days=store_settings.retention_days or 0
            )
        except CostStoreError as error:
            raise CommandError(f"--db / OTEL_GEMINI_COST_DB: {error}") from None
    exporter = LangfuseExporter(memory_max_bytes=memory)
    gateway = Gateway(exporter, prices, settings, cost_store=cost_store, budgets=rules)
    try:
        gateway.start()
    except OSError as error:
        # Taken between the check above and now.
        exporter.shutdown(0)
        if cost_store is not None:
            cost_store.shutdown(0)
        raise CommandError(
            f"--grpc-port / --http-port: cannot listen on {args.host}: {error}"
        ) from None

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    # One machine-readable line: scripts and tests read the ports from it (0 = any free port).
    print(
        f"otel-gemini gateway listening grpc={gateway.grpc_endpoint or 'off'} "
        f"http={gateway.http_endpoint or 'off'} spool={exporter.spool_directory}"
        + (f" db={cost_store.path}" if cost_store is not None else ""),
        flush=True,
    )
    stop.wait()
    gateway.shutdown(timeout=args.shutdown_timeout)
    stats = exporter.stats()
    print(
        f"otel-gemini gateway stopped: {stats.sent} spans sent, {stats.queued} left in the spool",
        flush=True,
    )
    return 0


def _checked(
    settings: GatewaySettings,
    export: str,
    cost_db: str | None,
    rules: BudgetRules | None,
) -> str:
    """The line ``--check`` prints: what the gateway would run with (no secret)."""

    def listener(port: int | None) -> str:
        if port is None:
            return "off"
        return f"{settings.host}:{port if port else 'any free port'}"

    security = settings.security
    budgets = (
        "none"
        if rules is None
        else f"{rules.source} ({len(rules.budgets)} budget rule(s), "
        f"{len(rules.anomalies)} anomaly rule(s))"
    )
    return (
        f"otel-gemini gateway: configuration valid: OTLP/gRPC {listener(settings.grpc_port)}, "
        f"OTLP/HTTP {listener(settings.http_port)} (token "
        f"{'on' if security.tokens else 'off'}, TLS {'on' if security.tls else 'off'}); "
        f"{export}; "
        f"cost store {cost_db or 'none'}; budgets {budgets}"
    )
