"""``otel-gemini demo``: the whole product on its embedded default (no keys, no network).

A fake Gemini (REST and Live API over loopback) and a fake Langfuse run in this process;
``configure()`` sets up the real pipeline against them; a few users chat, stream, call a
tool and talk to the Live API; then the demo prints what it cost by user, day and model,
latency percentiles, the pipeline's health, and checks that Langfuse received the same
cost the local store answers with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_gemini._configure import Telemetry
    from otel_gemini.testing import FakeGemini, FakeLangfuse, ReceivedSpan

HELP = "Run a realistic Gemini workload against in-process fakes and print what it cost."

_LANGFUSE_KEYS = ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")
_GEMINI_KEYS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# The cost details travel as JSON numbers; they round-trip within this.
_MATCH_TOLERANCE = Decimal("1e-12")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        HELP + " With no keys set nothing leaves this process: Gemini and Langfuse are "
        "in-process fakes and the cost store lives in a temporary directory. With "
        "GEMINI_API_KEY and LANGFUSE_* set, the same command talks to the real services."
    )
    parser.add_argument("--quiet", action="store_true", help="print only the final report")
    parser.add_argument(
        "--db", help="keep the cost store here, to query later with `otel-gemini costs --db`"
    )
    parser.add_argument(
        "--gemini",
        choices=("auto", "fake", "real"),
        default="auto",
        help="real: the Gemini API (GEMINI_API_KEY or GOOGLE_API_KEY; costs money); "
        "auto (default): real when one of those is set, else the fake",
    )
    parser.add_argument(
        "--langfuse",
        choices=("auto", "fake", "real"),
        default="auto",
        help="real: the Langfuse of LANGFUSE_PUBLIC_KEY / _SECRET_KEY / _BASE_URL; "
        "auto (default): real when both keys are set, else the fake",
    )


def run(args: argparse.Namespace) -> int:
    from otel_gemini._command_errors import CommandError
    from otel_gemini._extras import require_extra

    # The workload is scripted with the fakes' reply types, whichever servers it runs against.
    require_extra("testing", "otel-gemini demo")

    real_gemini = _real(args.gemini, _GEMINI_KEYS, any)
    real_langfuse = _real_langfuse(args.langfuse)
    if args.gemini == "real" and not real_gemini:
        raise CommandError(f"--gemini real needs {' or '.join(_GEMINI_KEYS)}")
    _check_before_starting(args.db)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="otel-gemini-")))
        gemini = None if real_gemini else stack.enter_context(_fake_gemini())
        langfuse = None if real_langfuse else stack.enter_context(_fake_langfuse())
        telemetry = _configure(workdir, args.db, langfuse)
        stack.callback(telemetry.shutdown, 10.0)
        say = _Printer(quiet=args.quiet)
        say(_intro(gemini, langfuse, telemetry))
        failures = _run_workload(gemini, say, real_gemini=real_gemini)
        telemetry.force_flush(timeout=10.0)
        _report(telemetry, langfuse)
        if args.db:
            db = shlex.quote(args.db)
            print(f"\nThe cost store is kept at {args.db}: otel-gemini costs --db {db} --by user")
            print(f"Open its dashboard: otel-gemini serve --db {db} --open")
        return 1 if failures else 0
    return 0  # pragma: no cover - the with block returns


def _real_langfuse(choice: str) -> bool:
    """Whether the demo exports to the real Langfuse of ``LANGFUSE_*``: ``real`` always,
    ``auto`` when any of them is set. Either way they are checked as ``configure()``
    checks them, so half-set keys or a bad URL stop the demo naming the setting instead of
    it quietly falling back to the fake."""
    from otel_gemini._command_errors import CommandError
    from otel_gemini._langfuse_settings import langfuse_requested, resolve_langfuse

    if choice == "fake":
        return False
    if choice == "real" and not langfuse_requested():
        raise CommandError(f"--langfuse real needs {' and '.join(_LANGFUSE_KEYS)}")
    if not langfuse_requested():
        return False
    resolve_langfuse()  # LangfuseConfigError: cli.main prints it as one line
    return True


def _check_before_starting(db: str | None) -> None:
    """The price table and the ``--db`` store, checked before any fake server starts."""
    from otel_gemini._command_errors import CommandError
    from otel_gemini.aggregate import CostStoreError, open_for_writing
    from otel_gemini.pricing import PriceTable

    PriceTable.from_env()  # PriceTableError names OTEL_GEMINI_PRICES
    if db is not None:
        try:
            open_for_writing(Path(db).expanduser()).close()
        except CostStoreError as error:
            raise CommandError(f"--db: {error}") from None


def _real(
    choice: str, variables: tuple[str, ...], combine: Callable[[Iterable[bool]], bool]
) -> bool:
    if choice == "fake":
        return False
    return combine(bool(os.environ.get(name)) for name in variables)


class _Printer:
    def __init__(self, *, quiet: bool) -> None:
        self._quiet = quiet

    def __call__(self, text: str) -> None:
        if not self._quiet:
            print(text, flush=True)


@contextlib.contextmanager
def _fake_gemini() -> Iterator[FakeGemini]:
    from otel_gemini.testing import FakeGemini, live_client_takes_ssl_context

    with FakeGemini(tls=True) as fake:  # TLS: the Live API only speaks wss://
        if not live_client_takes_ssl_context():
            # google-genai 1.x's Live client takes no SSL context: trust the fake's certificate.
            os.environ["SSL_CERT_FILE"] = fake.ca_bundle()
        yield fake


@contextlib.contextmanager
def _fake_langfuse() -> Iterator[FakeLangfuse]:
    from otel_gemini.testing import FakeLangfuse

    with FakeLangfuse() as fake:
        yield fake


def _configure(workdir: Path, db: str | None, langfuse: FakeLangfuse | None) -> Telemetry:
    from otel_gemini import configure
    from otel_gemini.export import ENV_SPOOL_DIR

    environ = dict(os.environ)
    if langfuse is not None:
        environ.pop("LANGFUSE_HOST", None)
        environ.update(langfuse.environment())
        environ[ENV_SPOOL_DIR] = str(workdir / "spool")
    return configure(
        service_name="otel-gemini-demo",
        cost_store=Path(db) if db else workdir / "costs.sqlite3",
        environ=environ,
    )


def _intro(gemini: FakeGemini | None, langfuse: FakeLangfuse | None, telemetry: Telemetry) -> str:
    gemini_text = f"a fake Gemini at {gemini.base_url}" if gemini else "the real Gemini API"
    langfuse_text = (
        f"a fake Langfuse at {langfuse.base_url}"
        if langfuse
        else f"Langfuse at {telemetry.exporter.base_url if telemetry.exporter else '?'}"
    )
    store = telemetry.cost_store.path if telemetry.cost_store else "none"
    return (
        f"otel-gemini demo: google-genai calls {gemini_text}; spans are priced with the "
        f"{telemetry.prices.version} price table and exported to {langfuse_text}; "
        f"cost store {store}.\n"
    )


def _run_workload(gemini: FakeGemini | None, say: _Printer, *, real_gemini: bool) -> int:
    from google import genai

    from otel_gemini import trace_attributes
    from otel_gemini._demo_workload import steps

    client = gemini.client() if gemini is not None else genai.Client()
    failures = 0
    for step in steps(real_gemini):
        if gemini is not None:
            step.script(gemini)
        with trace_attributes(user_id=step.user, session_id=step.session, tags=["demo"]):
            try:
                outcome = step.run(client)
            except Exception as error:  # a real API may refuse: report it, go on
                failures += 1
                outcome = f"FAILED: {type(error).__name__}: {error}"
        say(f"  {step.user:<5} {step.title}: {outcome}")
    return failures


def _report(telemetry: Telemetry, langfuse: FakeLangfuse | None) -> None:
    from otel_gemini.aggregate import (
        CostAnswers,
        LocalCostSource,
        parse_cost_query,
        parse_latency_query,
        print_costs,
        print_latency,
    )

    assert telemetry.cost_store is not None
    answers = CostAnswers(LocalCostSource(telemetry.cost_store.path))
    now = datetime.now(timezone.utc)
    for title, group_by in (
        ("Cost by user", "user"),
        ("Cost by day and model", "day,model"),
    ):
        print(f"\n{title}:")
        print_costs(answers.costs(parse_cost_query({"group_by": group_by}, now)).to_dict())
    print("\nLatency by model (milliseconds; against local fakes, so small):")
    print_latency(answers.latency(parse_latency_query({"group_by": "model"}, now)).to_dict())

    total = answers.costs(parse_cost_query({"group_by": ""}, now)).to_dict()["total"]
    health = telemetry.health()
    stats = health.stats
    reasons = f" ({'; '.join(health.reasons)})" if health.reasons else ""
    print(
        f"\nPipeline health: {health.status.value}{reasons}; spans accepted {stats.accepted}, "
        f"sent {stats.sent}, dropped {stats.dropped_total}, queued {stats.queued}"
    )
    if langfuse is not None:
        print(_langfuse_check(langfuse.spans, Decimal(total["cost"] or "0")))


def _langfuse_check(spans: Iterable[ReceivedSpan], local_total: Decimal) -> str:
    """What Langfuse would show as the total cost (the sum of the generations' cost-details
    ``total``, which Langfuse's metrics sum) against the local store's exact total."""
    from otel_gemini import _attributes as attrs

    received = Decimal(0)
    generations = 0
    for span in spans:
        details = span.attributes.get(attrs.LANGFUSE_COST_DETAILS)
        if isinstance(details, str):
            generations += 1
            buckets: dict[str, Any] = json.loads(details, parse_float=Decimal)
            received += Decimal(buckets["total"])
    verdict = "matches" if abs(received - local_total) <= _MATCH_TOLERANCE else "DOES NOT match"
    return (
        f"Langfuse received {generations} priced generations costing ${received.normalize():f} "
        f"in all: {verdict} the local store's total of ${local_total.normalize():f}."
    )
