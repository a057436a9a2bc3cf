"""The cost store under load and across versions: a queue bounded in bytes whose drops are
kept in the file and shown by every answer over their window (JSON, CLI, health, from another
process), rows from the cost processor's own figures, the service and tags columns, a store
written by main migrated and answered identically, and the gateway writing the same store.
Real OTel SDK, real CostSpanProcessor, real SQLite files, real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_process import COMMAND, iso, run_cli
from collector_harness import run_node_app
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_gemini import CostSpanProcessor, trace_attributes
from otel_gemini import _attributes as attrs
from otel_gemini._trace_attributes import TraceAttributesSpanProcessor
from otel_gemini.aggregate import (
    CostAnswers,
    CostStore,
    LocalCostSource,
    _rows,
    parse_cost_query,
    parse_latency_query,
)
from otel_gemini.aggregate._schema import HOUR_NS, SCHEMA_VERSION
from otel_gemini.aggregate._store import RECORD_BYTES
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.testing import FakeLangfuse

DATA = Path(__file__).parent / "data"
NOW_NS = time.time_ns()
# The hour before this one: the drops of this test are "in the last 24 h" for health.
HOUR = (NOW_NS // HOUR_NS - 1) * HOUR_NS
T0 = HOUR + 10 * 60 * 10**9
FLASH = {
    attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
    attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
}
FLASH_FEMTO = 800_000_000_000  # 1000 x $0.30/M + 200 x $2.50/M = $0.0008


def _tracer(*processors: SpanProcessor, service: str = "checkout") -> Any:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    for processor in processors:
        provider.add_span_processor(processor)
    return provider.get_tracer("test")


def _span(tracer: Any, attributes: dict[str, Any], start_ns: int = T0) -> None:
    span = tracer.start_span("generate_content gemini-2.5-flash", start_time=start_ns)
    span.set_attributes(attributes)
    span.end(end_time=start_ns + 250 * 10**6)


def _rows_of(path: Path) -> list[dict[str, Any]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM generations ORDER BY rowid")]
    finally:
        connection.close()


def test_a_forced_overflow_is_in_every_answer_also_from_another_process(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    # Room for three spans; a long batch delay keeps the writer from draining meanwhile.
    store = CostStore(db, retention_days=0, max_queue_bytes=3 * RECORD_BYTES, batch_delay=60)
    tracer = _tracer(CostSpanProcessor(store))
    try:
        for index in range(5):
            _span(tracer, FLASH, T0 + index)
        assert store.stats()["dropped"]["queue_full"] == 2
        assert store.force_flush(10_000)
        # An earlier hour without drops: its answers say 0.
        _span(tracer, FLASH, HOUR - HOUR_NS + 5)
        assert store.force_flush(10_000)
        (problem,) = store.problems()
        assert "2 span(s) dropped (queue_full)" in problem and "they are lost" in problem
    finally:
        store.shutdown(5000)
    assert len(_rows_of(db)) == 4

    window = ("--from", iso(HOUR), "--to", iso(HOUR + HOUR_NS), "--db", str(db))
    costs = run_cli("costs", *window, "--json")
    assert costs.returncode == 0, costs.stderr
    document = json.loads(costs.stdout)
    assert (document["dropped"], document["total"]["requests"]) == (2, 3)
    assert document["total"]["cost"] == "0.0024"
    latency = json.loads(run_cli("costs", "--latency", *window, "--json").stdout)
    assert (latency["dropped"], latency["groups"][0]["requests"]) == (2, 3)
    table = run_cli("costs", *window)
    assert table.stdout.splitlines()[-1] == (
        "WARNING: the cost store dropped 2 generation(s) in this window (see `otel-gemini "
        "health` and the log); the figures above miss them"
    )
    earlier = ("--from", iso(HOUR - HOUR_NS), "--to", iso(HOUR), "--db", str(db))
    quiet = json.loads(run_cli("costs", *earlier, "--json").stdout)
    assert (quiet["dropped"], quiet["total"]["requests"]) == (0, 1)
    assert "WARNING" not in run_cli("costs", *earlier).stdout

    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    health = run_cli("health", "--db", str(db), "--spool-dir", str(spool), "--json")
    assert health.returncode == 1, health.stderr  # degraded
    report = json.loads(health.stdout)
    assert report["status"] == "degraded"
    assert report["cost_store"]["dropped_last_24h"] == {"queue_full": 2}
    (reason,) = report["cost_store"]["reasons"]
    assert reason.startswith(f"cost store {db}: 2 generation(s) dropped in the last 24 h")
    text = run_cli("health", "--db", str(db), "--spool-dir", str(spool))
    assert "2 generation(s) dropped in the last 24 h (queue_full=2)" in text.stdout


def test_the_queue_bound_counts_captured_content(tmp_path: Path) -> None:
    store = CostStore(
        tmp_path / "c.sqlite3", retention_days=0, max_queue_bytes=2 * RECORD_BYTES, batch_delay=60
    )
    tracer = _tracer(CostSpanProcessor(store))
    try:
        big = {**FLASH, attrs.GEN_AI_INPUT_MESSAGES: "x" * (2 * RECORD_BYTES)}
        _span(tracer, big)
        _span(tracer, FLASH)
        stats = store.stats()
        assert (stats["queued"], stats["queue_bytes"]) == (1, RECORD_BYTES)
        assert stats["dropped"]["queue_full"] == 1
        assert stats["queue_capacity_bytes"] == 2 * RECORD_BYTES
    finally:
        store.shutdown(5000)


def test_rows_take_the_processors_figures_and_a_span_priced_elsewhere_gives_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = InMemorySpanExporter()
    here = CostStore(tmp_path / "here.sqlite3", retention_days=0)
    fan_out = [here, SimpleSpanProcessor(memory)]

    class Both(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            for processor in fan_out:
                processor.on_end(span)

    tracer = _tracer(CostSpanProcessor(Both()))
    audio = {**FLASH, attrs.usage_input_tokens_by_modality("audio"): 400}

    def no_parsing(*args: Any) -> Any:
        raise AssertionError("the store parsed the cost processor's JSON back")

    with monkeypatch.context() as patched:
        patched.setattr(_rows, "_costs", no_parsing)
        patched.setattr(_rows, "_tokens", no_parsing)
        _span(tracer, audio)
        assert here.force_flush(10_000)
    here.shutdown(5000)
    # The same priced span arriving from elsewhere (the gateway's input, another pipeline):
    # read from its attributes.
    (priced,) = memory.get_finished_spans()
    there = CostStore(tmp_path / "there.sqlite3", retention_days=0)
    _span(_tracer(there), dict(priced.attributes or {}))
    there.shutdown(5000)
    (mine,) = _rows_of(here.path)
    (theirs,) = _rows_of(there.path)
    ids = ("trace_id", "span_id")
    assert {k: v for k, v in mine.items() if k not in ids} == {
        k: v for k, v in theirs.items() if k not in ids
    }
    # 600 text x $0.30/M + 400 audio x $1.00/M + 200 x $2.50/M
    assert (mine["cost_femto"], mine["input_cost_femto"], mine["output_cost_femto"]) == (
        1_080_000_000_000,
        580_000_000_000,
        500_000_000_000,
    )
    assert (mine["input_tokens"], mine["output_tokens"], mine["total_tokens"]) == (1000, 200, 1200)
    assert mine["cost_details"] == priced.attributes[attrs.LANGFUSE_COST_DETAILS]


def test_service_name_and_sorted_tags_are_kept(tmp_path: Path) -> None:
    store = CostStore(tmp_path / "c.sqlite3", retention_days=0)
    tracer = _tracer(TraceAttributesSpanProcessor(), CostSpanProcessor(store), service="voice")
    with trace_attributes(user_id="u-1", tags=["beta", "ivr"]), trace_attributes(tags=["alpha"]):
        _span(tracer, FLASH)
    _span(tracer, FLASH, T0 + 1)  # no tags
    store.shutdown(5000)
    tagged, untagged = _rows_of(store.path)
    assert (tagged["service_name"], tagged["tags"], tagged["user_id"]) == (
        "voice",
        '["alpha", "beta", "ivr"]',
        "u-1",
    )
    assert (untagged["service_name"], untagged["tags"]) == ("voice", None)


def _answers(db: Path) -> dict[str, Any]:
    answers = CostAnswers(LocalCostSource(db))
    now = datetime(2026, 11, 10, tzinfo=timezone.utc)
    window = {"from": "2026-11-01", "to": "2026-11-08"}
    found: dict[str, Any] = {}
    for by in ("model", "user,day", "day,model", ""):
        query = parse_cost_query({**window, "group_by": by}, now)
        found[f"costs:{by}"] = answers.costs(query).to_dict()
    for by in ("model", "day"):
        query = parse_latency_query({**window, "group_by": by}, now)
        found[f"latency:{by}"] = answers.latency(query).to_dict()
    for document in found.values():
        assert document.pop("dropped") == 0
        # How percentiles are worked out is described, not answered: its text may change.
        document.pop("percentile_method", None)
    return found


def test_a_store_written_by_main_is_migrated_and_answered_identically(tmp_path: Path) -> None:
    # Written by main at 7309633 with tests/data/make_cost_store_written_by_main.py (schema 1),
    # with the answers main gave.
    db = tmp_path / "costs.sqlite3"
    shutil.copyfile(DATA / "cost_store_written_by_main.sqlite3", db)
    db.chmod(0o600)
    expected = json.loads((DATA / "cost_store_written_by_main.answers.json").read_text())
    for document in expected.values():
        document.pop("percentile_method", None)
    assert _answers(db) == expected  # read before any migration
    store = CostStore(db, retention_days=0)  # the writer migrates
    try:
        connection = sqlite3.connect(db)
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        connection.close()
        assert _answers(db) == expected
        _span(_tracer(CostSpanProcessor(store)), FLASH)
    finally:
        store.shutdown(5000)
    rows = _rows_of(db)
    assert len(rows) == 7
    assert {row["service_name"] for row in rows[:6]} == {None}
    assert (rows[6]["service_name"], rows[6]["cost_femto"]) == ("checkout", FLASH_FEMTO)
    assert _answers(db) == expected  # the new row is in no window of the old answers


def _gateway_spans(count: int) -> bytes:
    memory = InMemorySpanExporter()
    tracer = _tracer(SimpleSpanProcessor(memory), service="billing")
    for index in range(count):
        _span(tracer, {**FLASH, attrs.USER_ID: f"u-{index % 2}"}, T0 + index)
    body: bytes = encode_spans(memory.get_finished_spans()).SerializeToString()
    return body


def test_the_gateway_keeps_every_span_it_prices_in_its_store(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    with FakeLangfuse() as langfuse:
        exporter = LangfuseExporter(
            spool_dir=tmp_path / "spool",
            retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
            **langfuse.exporter_settings(),
        )
        store = CostStore(db, retention_days=0)
        settings = GatewaySettings(grpc_port=None, http_port=0)
        with Gateway(exporter, settings=settings, cost_store=store).start() as gateway:
            response = httpx.post(
                f"{gateway.http_endpoint}/v1/traces",
                content=_gateway_spans(5),
                headers={"content-type": "application/x-protobuf"},
            )
            assert response.status_code == 200
            langfuse.wait_for_spans(5)
            assert store.force_flush(10_000)
            health = gateway.health().to_dict()
            assert health["cost_store"]["written"] == 5
        assert "they are lost" not in " ".join(store.problems())
    rows = _rows_of(db)
    assert [row["cost_femto"] for row in rows] == [FLASH_FEMTO] * 5
    assert {row["service_name"] for row in rows} == {"billing"}
    assert sorted({row["user_id"] for row in rows}) == ["u-0", "u-1"]


def test_the_gateway_command_writes_the_store_for_the_node_app_at_full_rate(
    tmp_path: Path,
) -> None:
    from collector_harness import node_app_ready

    reason = node_app_ready()
    if reason:
        pytest.skip(reason)
    db = tmp_path / "costs.sqlite3"
    with FakeLangfuse() as langfuse:
        env = {
            **os.environ,
            **langfuse.environment(),
            "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
            "OTEL_GEMINI_COST_DB": str(db),
        }
        process = subprocess.Popen(
            [*COMMAND, "gateway", "--grpc-port", "off", "--http-port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.rstrip().endswith(f"db={db}"), line
            http = line.split("http=")[1].split()[0]
            node = run_node_app(f"{http}/v1/traces", traces=500)
            assert node["spans"] == 1500
            langfuse.wait_for_spans(1500, timeout=60)
            process.terminate()
            _, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, err
    connection = sqlite3.connect(db)
    try:
        count, cost, services, users = connection.execute(
            "SELECT count(*), sum(cost_femto), group_concat(DISTINCT service_name), "
            "group_concat(DISTINCT user_id) FROM generations"
        ).fetchone()
        dropped = connection.execute("SELECT count(*) FROM dropped_generations").fetchone()[0]
    finally:
        connection.close()
    # 500 x (1000 in + 200 out, 2000 in + 400 out) on gemini-2.5-flash: $0.0008 + $0.0016.
    assert (count, cost, services, users, dropped) == (
        1000,
        500 * (FLASH_FEMTO + 2 * FLASH_FEMTO),
        "node-test-app",
        "node-user",
        0,
    )


def test_serves_health_shows_the_drops_another_process_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from starlette.testclient import TestClient

    from otel_gemini.health import HEALTH_ENDPOINT
    from otel_gemini.server import _command as serve_command

    db = tmp_path / "costs.sqlite3"
    # The writing process: its queue holds one span; the second is dropped and recorded.
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[2]); import test_cost_store_scale as t;"
            "t.write_with_one_drop(sys.argv[1])",
            str(db),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert writer.returncode == 0, writer.stderr
    with FakeLangfuse() as langfuse:
        for name, value in langfuse.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("OTEL_GEMINI_SPOOL_DIR", str(tmp_path / "spool"))
        args = argparse.Namespace(db=str(db), source=None, no_export=False)
        app, answers, exporter = serve_command.build(args)
        try:
            with TestClient(app) as client:
                report = client.get(HEALTH_ENDPOINT).json()
        finally:
            answers.close()
            if exporter is not None:
                exporter.shutdown(5000)
    assert report["status"] == "degraded"
    assert report["cost_store"]["dropped_last_24h"] == {"queue_full": 1}
    assert any("1 generation(s) dropped in the last 24 h" in r for r in report["reasons"])


def write_with_one_drop(db: str) -> None:
    """(Run in another process by the test above.)"""
    store = CostStore(db, retention_days=0, max_queue_bytes=RECORD_BYTES, batch_delay=60)
    tracer = _tracer(CostSpanProcessor(store))
    _span(tracer, FLASH)
    _span(tracer, FLASH, T0 + 1)
    store.shutdown(5000)


def test_a_queued_span_holds_no_more_than_record_bytes(tmp_path: Path) -> None:
    import gc
    import tracemalloc

    count = 1000  # below the 1,024 queued spans that wake the writer at once
    store = CostStore(tmp_path / "c.sqlite3", retention_days=0, batch_delay=60)
    tracer = _tracer(TraceAttributesSpanProcessor(), CostSpanProcessor(store))

    def generation(index: int) -> None:
        # The attributes our instrumentation puts on a generate_content span, with the
        # values that differ from call to call made distinct.
        with trace_attributes(user_id=f"user-{index}", session_id=f"s-{index}", tags=["b"]):
            _span(
                tracer,
                {
                    **FLASH,
                    attrs.SERVER_ADDRESS: "generativelanguage.googleapis.com",
                    attrs.SERVER_PORT: 443,
                    attrs.GEN_AI_RESPONSE_ID: f"response-{index:08d}",
                    attrs.GEN_AI_RESPONSE_MODEL: "gemini-2.5-flash",
                    attrs.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
                    attrs.usage_input_tokens_by_modality("text"): 1000,
                    attrs.usage_output_tokens_by_modality("text"): 200,
                },
                T0 + index,
            )

    try:
        generation(-1)  # warm-up: caches, the provider's first span
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for index in range(count):
            generation(index)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        assert store.stats()["queued"] == count + 1
        assert held / count <= RECORD_BYTES, f"{held / count:.0f} bytes a queued span"
    finally:
        store.shutdown(10_000)


def test_retention_deletes_old_drops_with_old_rows(tmp_path: Path) -> None:
    store = CostStore(
        tmp_path / "c.sqlite3", retention_days=1, max_queue_bytes=RECORD_BYTES, batch_delay=60
    )
    tracer = _tracer(CostSpanProcessor(store))
    old = T0 - 3 * 86_400 * 10**9
    try:
        _span(tracer, FLASH, old)
        _span(tracer, FLASH, old + 1)  # dropped: the queue holds one
        _span(tracer, FLASH)  # dropped too, this hour
        assert store.force_flush(10_000)
        assert store.apply_retention(NOW_NS / 1e9) == 1
        connection = sqlite3.connect(store.path)
        try:
            drops = connection.execute("SELECT hour_ns, reason, count FROM dropped_generations")
            assert drops.fetchall() == [(HOUR, "queue_full", 1)]
        finally:
            connection.close()
    finally:
        store.shutdown(5000)
