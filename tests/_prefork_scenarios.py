"""Worker-process scenarios for tests/test_prefork.py, each run in a fresh interpreter.

Usage: python _prefork_scenarios.py SCENARIO CALLS RESULTS_DIR

The environment gives Langfuse (``LANGFUSE_*``), the spool (``OTEL_GEMINI_SPOOL_DIR``), the
cost store (``OTEL_GEMINI_COST_DB``) and the fake Gemini (``FAKE_GEMINI_URL``). Every call
is one ``generate_content`` through the real google-genai client, under
``trace_attributes(user_id="<scenario>-<pid>", session_id="<scenario>-<n>")``. Each worker
writes ``RESULTS_DIR/<pid>.json``: its calls and what its own ``Telemetry.health()`` said.

Scenarios:
- ``fork``: ``configure()`` in the parent (one call there), then ``os.fork()`` children
  making CALLS calls between them and exiting normally (``sys.exit``, so ``atexit`` runs).
- ``pool-fork``, ``pool-forkserver``, ``pool-spawn``: a ``multiprocessing`` pool of 3
  mapping CALLS calls and ended with ``close()`` + ``join()`` (workers end through
  ``os._exit``, skipping ``atexit``). With ``fork`` the parent configured (and made one
  call); with ``forkserver`` and ``spawn`` the pool's initializer calls ``configure()``.
- ``kill``: ``configure()`` in the parent, a child ``victim`` calling until SIGKILLed (it
  logs ``<session> <CLOCK_MONOTONIC>`` after each call to ``RESULTS_DIR/victim.log``) and a
  child making CALLS calls and exiting normally. Prints the victim's pid and waits for it.
- ``store-writer``: no Gemini and no Langfuse: a ``CostStore`` at ``OTEL_GEMINI_COST_DB``
  behind a ``CostSpanProcessor`` takes CALLS priced generations (1000 input and 300 output
  tokens of gemini-2.5-flash, user ``writer-<pid>``) as fast as it can, once a line comes on
  stdin (so that two writers start together); prints the store's stats as JSON at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from google import genai

import otel_gemini
from otel_gemini import trace_attributes

MODEL = "gemini-2.5-flash"
_client: tuple[int, genai.Client] | None = None
_results: Path | None = None
_scenario = ""
_telemetry: otel_gemini.Telemetry | None = None


def _configure() -> None:
    global _telemetry
    _telemetry = otel_gemini.configure(health_probe=False)


def _gemini() -> genai.Client:
    global _client
    # One per process: a client made before fork() shares its connections with the parent.
    if _client is None or _client[0] != os.getpid():
        client = genai.Client(api_key="test-key", http_options={"base_url": _url()})
        _client = (os.getpid(), client)
    return _client[1]


def _url() -> str:
    return os.environ["FAKE_GEMINI_URL"]


def call(number: int) -> int:
    """One generation, attributed to this process; returns the pid."""
    with trace_attributes(user_id=f"{_scenario}-{os.getpid()}", session_id=f"{_scenario}-{number}"):
        _gemini().models.generate_content(model=MODEL, contents=f"Question {number}?")
    return os.getpid()


def _report(calls: list[int]) -> None:
    """Writes what this worker did and what its own health says."""
    telemetry = _telemetry
    assert telemetry is not None
    flushed = telemetry.force_flush(timeout=10)
    report = telemetry.health()
    exporter = telemetry.exporter
    assert _results is not None
    document: dict[str, Any] = {
        "pid": os.getpid(),
        "calls": calls,
        "flushed": flushed,
        "status": report.status.value,
        "reasons": list(report.reasons),
        "sent": report.stats.sent,
        "cost_store": report.extra.get("cost_store"),
        "loops": [(loop.name, loop.state) for loop in report.loops],
        "spool": str(exporter.spool_directory) if exporter is not None else None,
    }
    _write_report(document)


def _write_report(document: dict[str, Any]) -> None:
    """Written whole or not at all: the test reads the directory while workers write."""
    assert _results is not None
    partial = _results / f"{os.getpid()}.partial"
    partial.write_text(json.dumps(document))
    os.replace(partial, _results / f"{os.getpid()}.json")


def _pool_init(scenario: str, results: str, configure: bool) -> None:
    global _scenario, _results
    _scenario, _results = scenario, Path(results)
    if configure:  # spawn / forkserver: a fresh interpreter, configured here
        _configure()


def _pool_call(number: int) -> int:
    pid = call(number)
    _pool_calls.append(number)
    # Reported on every call: the last report stands (a worker does not know its last task).
    # A force_flush here would hide the exit flush being tested, so only health is read.
    _write_pool_state()
    return pid


_pool_calls: list[int] = []


def _write_pool_state() -> None:
    telemetry = _telemetry
    assert telemetry is not None
    report = telemetry.health()
    exporter = telemetry.exporter
    assert _results is not None
    document = {
        "pid": os.getpid(),
        "calls": list(_pool_calls),
        "status": report.status.value,
        "reasons": list(report.reasons),
        "cost_store": report.extra.get("cost_store"),
        "loops": [(loop.name, loop.state) for loop in report.loops],
        "spool": str(exporter.spool_directory) if exporter is not None else None,
    }
    _write_report(document)


def _fork_children(calls: int, children: int) -> list[int]:
    pids = []
    # Every child reports before any ends: a child that ended frees its spool slot, which a
    # later child may then rightly take; the reports are to show slots held at one time.
    all_reported = multiprocessing.get_context("fork").Barrier(children)
    for child in range(children):
        mine = list(range(child, calls, children))
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for number in mine:
                    call(number)
                _report(mine)
                all_reported.wait(timeout=60)
                code = 0
            finally:
                # A normal end: SystemExit unwinds to the interpreter's exit, atexit runs.
                sys.exit(code)
        pids.append(pid)
    return pids


def _victim() -> None:
    assert _results is not None
    log = os.open(_results / "victim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    number = 0
    while True:
        number += 1
        call(10_000 + number)
        os.write(log, f"{_scenario}-{10_000 + number} {time.monotonic():.6f}\n".encode())


def _write_generations(count: int) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from otel_gemini import CostSpanProcessor
    from otel_gemini import _attributes as attrs
    from otel_gemini.aggregate import CostStore

    # Room for every span: this is about two writers sharing one file, not about the
    # queue's bound, which a loaded machine reached (queue_full) before the writer ran.
    store = CostStore(
        os.environ["OTEL_GEMINI_COST_DB"], max_queue=count, max_queue_bytes=count * 16_384
    )
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(CostSpanProcessor(store))
    tracer = provider.get_tracer("store-writer")
    attributes = {
        attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
        attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
        attrs.GEN_AI_REQUEST_MODEL: MODEL,
        attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        attrs.USER_ID: f"writer-{os.getpid()}",
    }
    print("ready", flush=True)
    sys.stdin.readline()  # both writers go at once
    for _ in range(count):
        with tracer.start_as_current_span(f"generate_content {MODEL}", attributes=attributes):
            pass
    store.shutdown(60_000)
    print(json.dumps(store.stats()), flush=True)


def main() -> None:
    global _scenario, _results
    scenario, calls, results = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    _scenario, _results = scenario, results
    if scenario == "fork":
        _configure()
        call(-1)  # the parent's own generation
        for pid in _fork_children(calls, 3):
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status
    elif scenario.startswith("pool-"):
        method = scenario.removeprefix("pool-")
        if method == "fork":
            _configure()
            call(-1)
        context = multiprocessing.get_context(method)
        pool = context.Pool(3, _pool_init, (scenario, str(results), method != "fork"))
        pids = pool.map(_pool_call, range(calls), chunksize=1)
        pool.close()  # workers end normally (the documented pattern; terminate() kills)
        pool.join()
        print(json.dumps(sorted(set(pids))))
    elif scenario == "store-writer":
        _write_generations(calls)
    elif scenario == "kill":
        _configure()
        victim = os.fork()
        if victim == 0:
            try:
                _victim()
            finally:
                os._exit(1)
        survivor = _fork_children(calls, 1)[0]
        print(victim, flush=True)
        _, status = os.waitpid(survivor, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        os.waitpid(victim, 0)
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()
