"""``otel-gemini health``: the export pipeline's health, from a running server or a spool.

Exit status: 0 healthy, 1 degraded, 2 unhealthy, 3 unknown (nothing to ask).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from otel_gemini import _listen_security

HELP = "Show the export pipeline's health (from a running server's URL or the spool directory)."

_UNKNOWN = 3
_STALE_STATUS_SECONDS = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="a running server (e.g. http://localhost:8000); "
        "/api/observability/health is added when the URL has no path",
    )
    parser.add_argument(
        "--spool-dir",
        help="the spool root to inspect (default: OTEL_GEMINI_SPOOL_DIR or its default)",
    )
    parser.add_argument(
        "--db",
        help="the cost store whose recorded drops to show (default: OTEL_GEMINI_COST_DB or "
        "its default, when there is one)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--timeout", type=float, default=5.0, help="HTTP timeout in seconds")
    parser.add_argument(
        "--auth-token-file",
        metavar="PATH",
        default=os.environ.get(_listen_security.TOKEN_FILE_ENV) or None,
        help="with --url: send its first token as 'Authorization: Bearer' "
        "(default OTEL_GEMINI_AUTH_TOKEN_FILE)",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="PATH",
        help="with an https --url: PEM CA certificate(s) to verify the server with "
        "(default: the system's)",
    )


def run(args: argparse.Namespace) -> int:
    if args.url:
        headers = {}
        if args.auth_token_file:
            from otel_gemini._command_errors import CommandError
            from otel_gemini._listen_security import TokenFile, TokenFileError

            try:
                token = TokenFile(args.auth_token_file).tokens()[0].decode()
            except TokenFileError as error:
                raise CommandError(f"--auth-token-file {error}") from None
            headers["Authorization"] = f"Bearer {token}"
        return _from_server(args.url, args.timeout, args.json, headers, args.tls_ca)
    # The spool is this machine's export pipeline: the LANGFUSE_* settings it is exported
    # with are checked as every entry point checks them (a bad one exits 2, naming it).
    from otel_gemini._langfuse_settings import langfuse_from_env

    langfuse_from_env()
    return _from_spool(args.spool_dir, args.json, _cost_store(args.db))


def _cost_store(db: str | None) -> tuple[dict[str, object], list[str]] | None:
    """The drops recorded in the cost store file (by whichever process wrote it)."""
    from otel_gemini.aggregate import path_from, store_drops

    path = path_from(db or None, os.environ)
    return store_drops(path, time.time())


def _from_server(
    url: str,
    timeout: float,
    as_json: bool,
    headers: dict[str, str] | None = None,
    tls_ca: str | None = None,
) -> int:
    import ssl

    import httpx

    from otel_gemini._command_errors import CommandError
    from otel_gemini._suppress import suppress_instrumentation
    from otel_gemini.health._report import HEALTH_ENDPOINT

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise CommandError(f"--url {url!r} is not a URL: {error}") from None
    if parsed.path in ("", "/"):
        url = url.rstrip("/") + HEALTH_ENDPOINT
    verify: ssl.SSLContext | bool = True
    if tls_ca:
        try:
            verify = ssl.create_default_context(cafile=tls_ca)
        except (OSError, ssl.SSLError) as error:
            raise CommandError(
                f"--tls-ca {tls_ca}: not readable PEM certificates: {error}"
            ) from None
    try:
        # Under opentelemetry-instrument, our GET would be a span of the command's own.
        with suppress_instrumentation():
            response = httpx.get(url, timeout=timeout, headers=headers, verify=verify)
    except (httpx.HTTPError, ValueError) as error:
        # ValueError/httpx.InvalidURL: not a URL httpx can request.
        print(f"otel-gemini health: cannot read {url}: {error}", file=sys.stderr)
        return _UNKNOWN
    if response.status_code == 401:
        print(
            f"otel-gemini health: {url} wants a token (HTTP 401): give --auth-token-file "
            "or OTEL_GEMINI_AUTH_TOKEN_FILE a token it accepts",
            file=sys.stderr,
        )
        return _UNKNOWN
    report = _health_document(response)
    if report is None:
        print(
            f"otel-gemini health: {url} is not an otel-gemini health endpoint "
            f"(HTTP {response.status_code}, {response.headers.get('content-type') or 'no'} "
            "content type); give --url the server's address or its "
            f"{HEALTH_ENDPOINT}",
            file=sys.stderr,
        )
        return _UNKNOWN
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return _exit_code(str(report.get("status")))


def _health_document(response: Any) -> dict[str, Any] | None:
    """The report, if ``response`` is one: a JSON object with a known ``status``
    (served with 200 or, when unhealthy or unknown, 503)."""
    try:
        document = response.json()
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("status") not in _STATUSES:
        return None
    return document


_STATUSES = ("healthy", "degraded", "unhealthy", "unknown")


def _exit_code(status: str) -> int:
    return {"healthy": 0, "degraded": 1, "unhealthy": 2}.get(status, _UNKNOWN)


def _print_report(report: dict[str, Any], indent: str = "") -> None:
    print(f"{indent}status: {report.get('status')}")
    for reason in report.get("reasons") or []:
        print(f"{indent}  - {reason}")
    queue = report.get("queue") or {}
    counts = report.get("counts") or {}
    capacity = queue.get("capacity_bytes") or 0
    print(
        f"{indent}queue: {queue.get('spans', 0)} spans, {_size(queue.get('bytes', 0))}"
        + (f" of {_size(capacity)}" if capacity else "")
    )
    print(
        f"{indent}sent {counts.get('sent', 0)}, failed attempts {counts.get('send_failed', 0)}, "
        f"dropped {counts.get('dropped', 0)}, dead-lettered {counts.get('dead_lettered', 0)}"
    )
    print(f"{indent}last success: {report.get('last_success') or 'never'}")
    last_error = report.get("last_error") or {}
    if last_error.get("message"):
        print(f"{indent}last error: {last_error.get('time')} {last_error.get('message')}")
    print(f"{indent}consecutive failures: {report.get('consecutive_failures', 0)}")
    langfuse = report.get("langfuse") or {}
    if langfuse.get("checked_at"):
        print(
            f"{indent}langfuse: {langfuse.get('base_url')} reachable={langfuse.get('reachable')} "
            f"credentials={langfuse.get('credentials')}"
        )
    loops = report.get("loops") or {}
    if loops:
        print(f"{indent}loops: " + ", ".join(_loop_text(loop) for loop in loops.values()))
    for name, value in report.items():
        if name not in _SHOWN_ABOVE and value not in (None, {}, []):
            print(f"{indent}{name}: {_flat(value)}")


# What _print_report shows first, or (the exporter's raw counters) only in --json.
_SHOWN_ABOVE = frozenset(
    {
        "status",
        "reasons",
        "checked_at",
        "last_success",
        "last_error",
        "consecutive_failures",
        "queue",
        "counts",
        "langfuse",
        "exporter",
        "loops",
    }
)


def _loop_text(loop: dict[str, Any]) -> str:
    text = f"{loop.get('name')} {loop.get('state')}"
    if loop.get("restarts") or loop.get("errors"):
        text += f" (restarts {loop.get('restarts', 0)}, errors {loop.get('errors', 0)})"
    return text


def _flat(value: object, prefix: str = "") -> str:
    """A section added to the report (gateway, pricing, cost store, ...) on one line:
    ``key value`` pairs, nested keys joined with dots."""
    if not isinstance(value, dict):
        if isinstance(value, list):
            return "[" + ", ".join(str(item) for item in value) + "]"
        return str(value)
    pairs = []
    for key, item in value.items():
        if isinstance(item, dict):
            if item:
                pairs.append(_flat(item, f"{prefix}{key}."))
        elif item is not None:
            pairs.append(f"{prefix}{key} {_flat(item)}")
    return ", ".join(pairs)


def _size(count: object) -> str:
    value = float(count) if isinstance(count, (int, float)) else 0.0
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _from_spool(
    spool_dir: str | None,
    as_json: bool,
    store: tuple[dict[str, object], list[str]] | None = None,
) -> int:
    from otel_gemini.export import (
        ENV_SPOOL_DIR,
        default_spool_dir,
        read_backlog,
        slot_directories,
        slot_owner,
    )
    from otel_gemini.health._report import HealthStatus
    from otel_gemini.health._reporter import report_from_status

    root = Path(spool_dir or os.environ.get(ENV_SPOOL_DIR) or default_spool_dir(os.environ))
    slots = slot_directories(root)
    if not slots and store is None:
        print(f"otel-gemini health: no spool under {root}", file=sys.stderr)
        return _UNKNOWN
    now = time.time()
    worst = HealthStatus.HEALTHY
    store_document: dict[str, object] | None = None
    store_reasons: list[str] = []
    if store is not None:
        section, store_reasons = store
        store_document = {**section, "reasons": store_reasons}
        if store_reasons:
            worst = HealthStatus.DEGRADED
    documents: list[dict[str, Any]] = []
    for slot in slots:
        owner = slot_owner(slot)
        backlog = read_backlog(slot)
        document: dict[str, Any] = {
            "slot": str(slot),
            "owner_pid": owner,
            "on_disk": {
                "spans": backlog.spans,
                "bytes": backlog.bytes,
                "segments": backlog.segments,
                "dead_letter_files": backlog.dead_letter_files,
                "quarantined_files": backlog.quarantined_files,
            },
        }
        status_file = backlog.status
        written_at = status_file.get("written_at") if status_file else None
        if owner is not None and status_file and isinstance(written_at, (int, float)):
            # The owner's own judgement, from what it wrote: the same rules and inputs as its
            # health endpoint (loops, probe, request timeout).
            judged = report_from_status(status_file, now)
            status = judged.status
            report = judged.to_dict()
            if now - written_at > _STALE_STATUS_SECONDS:
                # Owners rewrite the file at least once a minute: this one is stuck, and what
                # it last said (healthy, say) is no longer known to hold: degraded at best.
                if status is HealthStatus.HEALTHY:
                    status = HealthStatus.DEGRADED
                    report["status"] = status.value
                report["reasons"] = [
                    *judged.reasons,
                    f"the owner's status is {now - written_at:.0f} s old (stuck?)",
                ]
            report["status_file_age_seconds"] = round(now - written_at, 1)
            document["report"] = report
        elif owner is None and backlog.spans:
            status = HealthStatus.DEGRADED
            document["report"] = {
                "status": status.value,
                "reasons": [
                    f"{backlog.spans} span(s) wait in {slot} with no running exporter; "
                    "the next exporter to take this slot sends them"
                ],
            }
        else:
            status = HealthStatus.HEALTHY
            document["report"] = {
                "status": status.value,
                "reasons": [] if owner is not None else ["no running exporter; nothing waiting"],
            }
        if _exit_code(status.value) > _exit_code(worst.value):
            worst = status
        documents.append(document)
    if as_json:
        whole: dict[str, object] = {"status": worst.value, "slots": documents}
        if store_document is not None:
            whole["cost_store"] = store_document
        print(json.dumps(whole, indent=2))
    else:
        print(f"status: {worst.value} ({root})")
        if not slots:
            print(f"no spool under {root}")
        if store_document is not None:
            print(f"cost store {store_document['path']}:")
            for reason in store_reasons or ["no generations dropped recently"]:
                print(f"  - {reason}")
        for document in documents:
            owner = document["owner_pid"]
            on_disk = document["on_disk"]
            print(
                f"\n{document['slot']}: "
                + (f"owned by pid {owner}" if owner is not None else "no owner")
                + f"; on disk {on_disk['spans']} spans in {on_disk['segments']} segment(s), "
                f"{on_disk['dead_letter_files']} dead-letter file(s), "
                f"{on_disk['quarantined_files']} quarantined"
            )
            _print_report(document["report"], indent="  ")
    return worst.exit_code
