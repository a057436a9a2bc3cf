"""CostStore: one row per generation, written off the application thread, idempotent,
bounded, with retention; over the real OTel SDK and the real CostSpanProcessor."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import Status, StatusCode
from polling import wait_until

from otel_gemini import CostSpanProcessor, Telemetry, configure
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate import CostStore, CostStoreError, _schema, _store
from otel_gemini.aggregate._settings import ENV_COST_DB, ENV_COST_RETENTION_DAYS
from otel_gemini.aggregate._store import DROP_WRITE_ERROR
from otel_gemini.health import HealthStatus

DAY_NS = 86_400 * 10**9
# 2026-11-20T10:00:00Z: inside the shipped price table's current period.
T0 = 1_795_168_800 * 10**9

# The docs/costs.md example: gemini-2.5-flash, 1,000 prompt tokens of which 400 audio, 300
# cached of which 100 audio; 300 output tokens and 200 thinking tokens.
VOICE_USAGE: dict[str, Any] = {
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    attrs.usage_input_tokens_by_modality("audio"): 400,
    attrs.usage_input_tokens_by_modality("text"): 600,
    attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 300,
    attrs.USAGE_CACHE_READ_AUDIO_TOKENS: 100,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 500,
    attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 200,
}


def generation(model: str = "gemini-2.5-flash", **extra: Any) -> dict[str, Any]:
    return {
        attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
        attrs.GEN_AI_REQUEST_MODEL: model,
        attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
        **extra,
    }


class Pipeline:
    def __init__(self, store: CostStore) -> None:
        self.store = store
        self.pricer = CostSpanProcessor(store)
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.pricer)
        self.tracer = self.provider.get_tracer("test")

    def span(
        self,
        attributes: dict[str, Any],
        start_ns: int = T0,
        duration_ms: float = 100.0,
        error: str | None = None,
    ) -> ReadableSpan:
        span = self.tracer.start_span("generate_content", start_time=start_ns)
        span.set_attributes(attributes)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=start_ns + int(duration_ms * 1e6))
        assert isinstance(span, ReadableSpan)
        return span

    def rows(self) -> list[dict[str, Any]]:
        assert self.store.force_flush(10_000)
        connection = sqlite3.connect(self.store.path)
        connection.row_factory = sqlite3.Row
        try:
            rows = connection.execute("SELECT * FROM generations ORDER BY start_ns").fetchall()
        finally:
            connection.close()
        return [dict(row) for row in rows]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    store = CostStore(tmp_path / "costs.sqlite3", retention_days=0)
    yield Pipeline(store)
    store.shutdown(5000)


def test_a_priced_generation_becomes_one_exact_row(pipeline: Pipeline) -> None:
    span = pipeline.span(
        generation(
            **VOICE_USAGE,
            **{attrs.USER_ID: "u-1", attrs.SESSION_ID: "s-1"},
            **{attrs.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: 0.25},
        ),
        duration_ms=1234.5,
    )
    [row] = pipeline.rows()
    assert row["trace_id"] == format(span.context.trace_id, "032x")
    assert row["span_id"] == format(span.context.span_id, "016x")
    assert (row["start_ns"], row["end_ns"]) == (T0, T0 + 1_234_500_000)
    assert (row["user_id"], row["session_id"]) == ("u-1", "s-1")
    assert (row["model"], row["provider"], row["operation"]) == (
        "gemini-2.5-flash",
        "gcp.gemini",
        "generate_content",
    )
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (1000, 500, 1500)
    assert json.loads(row["usage_details"]) == {
        "input": 400,
        "input_audio": 300,
        "input_cached": 200,
        "input_cached_audio": 100,
        "output": 300,
        "output_reasoning": 200,
        "total": 1500,
    }
    assert json.loads(row["cost_details"], parse_float=str) == {
        "input": "0.00012",
        "input_audio": "0.0003",
        "input_cached": "0.000006",
        "input_cached_audio": "0.00001",
        "output": "0.00075",
        "output_reasoning": "0.0005",
        "total": "0.001686",
    }
    assert row["cost_femto"] == 1_686_000_000_000
    assert row["input_cost_femto"] == 436_000_000_000  # 0.00012 + 0.0003 + 0.000006 + 0.00001
    assert row["output_cost_femto"] == 1_250_000_000_000
    assert (row["cost_status"], row["prices_version"]) == ("priced", "2026-11-24")
    assert row["latency_ms"] == 1234.5
    assert row["ttft_ms"] == 250.0
    assert (row["is_error"], row["error_type"]) == (0, None)
    assert pipeline.store.stats()["written"] == 1


def test_langfuse_user_and_session_win_over_the_general_ones(pipeline: Pipeline) -> None:
    pipeline.span(
        generation(
            **VOICE_USAGE,
            **{attrs.USER_ID: "u-1", attrs.LANGFUSE_USER_ID: "u-2"},
            **{attrs.GEN_AI_CONVERSATION_ID: "c-1", attrs.LANGFUSE_SESSION_ID: "s-2"},
        )
    )
    [row] = pipeline.rows()
    assert (row["user_id"], row["session_id"]) == ("u-2", "s-2")


def test_writing_a_span_twice_keeps_one_row(pipeline: Pipeline) -> None:
    span = pipeline.span(generation(**VOICE_USAGE))
    pipeline.pricer.on_end(span)  # the same span again (an export retry, a replay)
    pipeline.store.on_end(span)
    rows = pipeline.rows()
    assert len(rows) == 1
    assert pipeline.store.stats()["written"] == 3


def test_unknown_model_no_usage_failed_and_grouping_spans(pipeline: Pipeline) -> None:
    pipeline.span(generation("gemini-9-imaginary", **VOICE_USAGE), start_ns=T0)
    pipeline.span(
        generation(**{attrs.GEN_AI_USAGE_INPUT_TOKENS: 0, attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 0}),
        start_ns=T0 + 1,
    )
    pipeline.span(
        generation(**{attrs.ERROR_TYPE: "503"}), start_ns=T0 + 2, error="Service Unavailable"
    )
    # Not generations: an AFC parent, a tool run, a Live session, a plain HTTP span.
    pipeline.span(
        {
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_INVOKE_AGENT,
            attrs.LANGFUSE_OBSERVATION_TYPE: "agent",
            attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
        }
    )
    pipeline.span({attrs.GEN_AI_OPERATION_NAME: attrs.OP_EXECUTE_TOOL})
    pipeline.span(
        {
            attrs.GEN_AI_OPERATION_NAME: attrs.OP_LIVE_SESSION,
            attrs.LANGFUSE_OBSERVATION_TYPE: "span",
            attrs.LIVE_TURN_COUNT: 2,
        }
    )
    pipeline.span({"http.request.method": "POST"})

    unknown, no_usage, failed = pipeline.rows()
    assert (unknown["cost_status"], unknown["cost_femto"], unknown["cost_details"]) == (
        "unknown_model",
        None,
        None,
    )
    assert (unknown["input_tokens"], unknown["output_tokens"]) == (1000, 500)
    assert (no_usage["cost_status"], no_usage["cost_femto"]) == ("no_usage", 0)
    assert (failed["cost_status"], failed["cost_femto"]) == (None, None)
    assert (failed["is_error"], failed["error_type"]) == (1, "503")
    stats = pipeline.store.stats()
    assert (stats["written"], stats["skipped"]) == (3, 4)


def test_the_price_is_worked_out_on_the_writer_thread(tmp_path: Path) -> None:
    # A long batch delay keeps the writer waiting until the flush.
    store = CostStore(tmp_path / "c.sqlite3", retention_days=0, batch_delay=60)
    pipeline = Pipeline(store)
    priced_on: list[str] = []
    original = pipeline.pricer._pricer.price_attributes

    def spy(attributes: dict[str, Any], start_ns: int) -> None:
        priced_on.append(threading.current_thread().name)
        original(attributes, start_ns)

    pipeline.pricer._pricer.price_attributes = spy  # type: ignore[method-assign]
    try:
        pipeline.span(generation(**VOICE_USAGE))
        assert priced_on == []  # on_end returned without reading the attributes
        assert pipeline.rows()[0]["cost_femto"] == 1_686_000_000_000
        assert priced_on == ["otel-gemini-cost-store"]
    finally:
        store.shutdown(5000)


def test_a_full_queue_drops_and_counts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CostStore(tmp_path / "c.sqlite3", retention_days=0, max_queue=3, batch_delay=60)
    pipeline = Pipeline(store)
    try:
        for index in range(5):
            pipeline.span(generation(**VOICE_USAGE), start_ns=T0 + index)
        assert store.stats()["dropped"]["queue_full"] == 2
        assert len(pipeline.rows()) == 3
        assert "dropped 2 generation(s) so far (by reason: queue_full=2)" in caplog.text
        # No Langfuse export here: the log says they are gone, not where they still are.
        assert "they are lost" in caplog.text and "Langfuse" not in caplog.text
    finally:
        store.shutdown(5000)
    pipeline.span(generation(**VOICE_USAGE))
    assert store.stats()["dropped"] == {
        "queue_full": 2,
        "shutdown": 1,
        "write_error": 0,
        "read_error": 0,
        "shutdown_timeout": 0,
    }


def test_shutdown_writes_what_is_queued_and_is_idempotent(tmp_path: Path) -> None:
    store = CostStore(tmp_path / "c.sqlite3", retention_days=0, batch_delay=60)
    pipeline = Pipeline(store)
    for index in range(10):
        pipeline.span(generation(**VOICE_USAGE), start_ns=T0 + index)
    store.shutdown(10_000)
    store.shutdown(10_000)
    connection = sqlite3.connect(store.path)
    try:
        assert connection.execute("SELECT count(*) FROM generations").fetchone() == (10,)
    finally:
        connection.close()
    assert store.stats()["written"] == 10
    assert store.force_flush(100) is True  # nothing left to write


def test_retention_deletes_old_rows(tmp_path: Path) -> None:
    store = CostStore(tmp_path / "c.sqlite3", retention_days=7)
    pipeline = Pipeline(store)
    try:
        for age_days in (10, 8, 6, 0):
            pipeline.span(generation(**VOICE_USAGE), start_ns=T0 - age_days * DAY_NS)
        assert len(pipeline.rows()) == 4
        assert store.apply_retention(now=T0 / 1e9) == 2
        assert [row["start_ns"] for row in pipeline.rows()] == [T0 - 6 * DAY_NS, T0]
        assert store.stats()["deleted_by_retention"] == 2
    finally:
        store.shutdown(5000)


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_COST_DB, str(tmp_path / "env" / "store.sqlite3"))
    monkeypatch.setenv(ENV_COST_RETENTION_DAYS, "30")
    store = CostStore()
    try:
        assert store.path == tmp_path / "env" / "store.sqlite3"
        assert store.retention_days == 30
        assert store.path.exists()
        connection = sqlite3.connect(store.path)
        try:
            assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            connection.close()
    finally:
        store.shutdown(5000)
    monkeypatch.setenv(ENV_COST_RETENTION_DAYS, "a month")
    with pytest.raises(CostStoreError, match=ENV_COST_RETENTION_DAYS):
        CostStore(tmp_path / "x.sqlite3")


def test_an_unusable_path_fails_at_start_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(CostStoreError, match="not-a-directory"):
        CostStore(blocker / "costs.sqlite3")


def test_rows_read_from_the_langfuse_cost_attribute_alone(pipeline: Pipeline) -> None:
    # A span priced elsewhere (no cost details, only gen_ai.usage.cost): cost total only.
    pipeline.span(
        {
            attrs.GEN_AI_OPERATION_NAME: "chat",
            attrs.LLM_MODEL_NAME: "some-model",
            attrs.GEN_AI_USAGE_COST: 0.0125,
        }
    )
    rows = pipeline.rows()
    assert rows[-1]["cost_femto"] == 12_500_000_000_000
    assert json.loads(rows[-1]["cost_details"], parse_float=str) == {"total": "0.0125"}


# --- many processes on one store ---


@pytest.fixture
def locked_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[sqlite3.Connection]:
    """Another process's connection holding the store's write lock (``BEGIN EXCLUSIVE``); the
    store's own connections wait 20 ms per attempt instead of 5 s."""
    monkeypatch.setattr(_schema, "BUSY_TIMEOUT_MS", 20)
    CostStore(tmp_path / "costs.sqlite3").shutdown(5000)  # the schema exists
    blocker = sqlite3.connect(tmp_path / "costs.sqlite3", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    yield blocker
    if blocker.in_transaction:
        blocker.execute("ROLLBACK")
    blocker.close()


@contextmanager
def configured_store(tmp_path: Path) -> Iterator[tuple[TracerProvider, Telemetry, CostStore]]:
    """configure() with a cost store and nothing else; shut down on leaving."""
    provider = TracerProvider()
    telemetry = configure(
        tracer_provider=provider,
        langfuse=False,
        cost_store=tmp_path / "costs.sqlite3",
        instrument=False,
        health_probe=False,
    )
    try:
        store = telemetry.cost_store
        assert store is not None
        yield provider, telemetry, store
    finally:
        telemetry.shutdown()
        provider.shutdown()


def test_a_write_waits_out_another_process_holding_the_database(
    tmp_path: Path, locked_store: sqlite3.Connection
) -> None:
    store = CostStore(tmp_path / "costs.sqlite3", batch_delay=0)
    try:
        pipeline = Pipeline(store)
        pipeline.span(generation(**VOICE_USAGE))
        wait_until(lambda: store.stats()["busy_retries"] >= 3, 10, "the store to back off")
        locked_store.execute("COMMIT")
        assert len(pipeline.rows()) == 1
        assert store.stats()["dropped"][DROP_WRITE_ERROR] == 0
        assert store.problems() == []
    finally:
        store.shutdown(5000)


def test_a_write_that_finally_fails_is_counted_and_degrades_health(
    tmp_path: Path, locked_store: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "BUSY_RETRY_SECONDS", 0.2)
    with configured_store(tmp_path) as (provider, telemetry, store):
        span = provider.get_tracer("test").start_span("generate_content")
        span.set_attributes(generation(**VOICE_USAGE))
        span.end()
        assert store.force_flush(10_000)  # processed: not written, and counted
        assert store.stats()["dropped"][DROP_WRITE_ERROR] == 1
        report = telemetry.health()
        assert report.status is HealthStatus.DEGRADED
        assert any("1 generation(s) could not be written" in reason for reason in report.reasons)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_writes_its_own_rows_with_its_own_writer_and_connection(
    pipeline: Pipeline,
) -> None:
    pipeline.span(generation(**VOICE_USAGE, **{attrs.USER_ID: "parent"}))
    assert len(pipeline.rows()) == 1
    parent_connection = pipeline.store._connection
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its own store wrote its rows
        code = 1
        try:
            store = pipeline.store
            fresh = store.stats()["written"] == 0 and store._connection is None
            for _ in range(2):
                pipeline.span(generation(**VOICE_USAGE, **{attrs.USER_ID: "child"}))
            flushed = store.force_flush(10_000)
            stats = store.stats()
            own = store._connection is not None and store._connection is not parent_connection
            code = 0 if fresh and flushed and own and stats["written"] == 2 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    pipeline.span(generation(**VOICE_USAGE, **{attrs.USER_ID: "parent"}))  # still writing
    users = sorted(row["user_id"] for row in pipeline.rows())
    assert users == ["child", "child", "parent", "parent"]
    assert pipeline.store.stats()["written"] == 2


def test_a_row_sqlite_cannot_take_is_dropped_alone_and_the_writer_goes_on(
    tmp_path: Path,
) -> None:
    # A lone surrogate cannot be encoded to UTF-8: executemany raised UnicodeEncodeError,
    # which the writer did not catch; it retried that batch forever, writing nothing more.
    with configured_store(tmp_path) as (provider, telemetry, store):
        tracer = provider.get_tracer("test")
        for user in ("alice", "bob\udc80", "carol"):
            span = tracer.start_span("generate_content")
            span.set_attributes(generation(**VOICE_USAGE, **{attrs.USER_ID: user}))
            span.end()
        assert store.force_flush(10_000)
        with sqlite3.connect(store.path) as connection:
            users = connection.execute("SELECT user_id FROM generations").fetchall()
        assert sorted(users) == [("alice",), ("carol",)]
        stats = store.stats()
        assert stats["written"] == 2 and stats["dropped"][DROP_WRITE_ERROR] == 1
        report = telemetry.health()
        assert report.status is HealthStatus.DEGRADED
        assert any("1 generation(s) could not be written" in reason for reason in report.reasons)


def test_recent_queue_full_and_read_error_drops_degrade_health_for_10_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    store = CostStore(
        tmp_path / "c.sqlite3",
        retention_days=0,
        max_queue=3,
        batch_delay=60,
        clock=lambda: now[0],
    )
    pipeline = Pipeline(store)
    try:
        for index in range(5):
            pipeline.span(generation(**VOICE_USAGE), start_ns=T0 + index)
        assert store.force_flush(10_000)
        (queue_full,) = store.problems()
        assert "2 span(s) dropped (queue_full)" in queue_full
        now[0] += _store.RECENT_DROP_SECONDS + 1
        assert store.problems() == []  # no longer recent

        real = _store.record_row

        def unreadable(record: Any) -> Any:
            if record[5].get(attrs.USER_ID) == "bad":
                raise ValueError("cannot read it")
            return real(record)

        monkeypatch.setattr(_store, "record_row", unreadable)
        pipeline.span(generation(**VOICE_USAGE, **{attrs.USER_ID: "bad"}))
        assert store.force_flush(10_000)
        (read_error,) = store.problems()
        assert "1 span(s) dropped (read_error)" in read_error
    finally:
        store.shutdown(5000)
    pipeline.span(generation(**VOICE_USAGE))  # after shutdown: no problem
    now[0] += 1
    assert len(store.problems()) == 1


def test_a_new_store_another_process_is_creating_is_opened_once_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prefork workers start together: switching a new file to WAL answers "database is
    # locked" at once (no busy wait) to all but one, as this stand-in does twice. The others
    # must try again, not fail (tests/test_prefork.py races two real processes).
    real_open = _schema._open_store
    attempts: list[Path] = []

    def racing(target: Path) -> sqlite3.Connection:
        attempts.append(target)
        if len(attempts) <= 2:
            locked = sqlite3.OperationalError("database is locked")
            raise CostStoreError(f"cannot use the cost store: {locked}") from locked
        return real_open(target)

    monkeypatch.setattr(_schema, "_open_store", racing)
    store = CostStore(tmp_path / "costs.sqlite3")
    store.shutdown()
    assert len(attempts) == 3


def test_a_store_that_cannot_be_opened_for_another_reason_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[Path] = []

    def broken(target: Path) -> sqlite3.Connection:
        attempts.append(target)
        error = sqlite3.DatabaseError("file is not a database")
        raise CostStoreError(f"cannot use the cost store: {error}") from error

    monkeypatch.setattr(_schema, "_open_store", broken)
    with pytest.raises(CostStoreError, match="file is not a database"):
        CostStore(tmp_path / "costs.sqlite3")
    assert len(attempts) == 1


def test_a_store_written_by_the_previous_schema_is_migrated_in_place(tmp_path: Path) -> None:
    # tests/data/cost_store_written_by_main_v1.sqlite3: schema 1, two rows of $0.00055 (u-1, u-2).
    path = tmp_path / "costs.sqlite3"
    path.write_bytes(
        (Path(__file__).parent / "data" / "cost_store_written_by_main_v1.sqlite3").read_bytes()
    )
    path.chmod(0o600)
    store = CostStore(path, retention_days=0)
    pipeline = Pipeline(store)
    pipeline.provider = TracerProvider(resource=Resource.create({"service.name": "voice-app"}))
    pipeline.provider.add_span_processor(pipeline.pricer)
    pipeline.tracer = pipeline.provider.get_tracer("test")
    pipeline.span(
        generation(
            **{
                attrs.USER_ID: "u-3",
                attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
                attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
                attrs.LANGFUSE_TRACE_TAGS: ("voice", "beta", "voice"),
            }
        ),
        start_ns=T0 + 5 * 10**9,
    )
    rows = pipeline.rows()
    store.shutdown()
    assert [(r["user_id"], r["cost_femto"], r["service_name"], r["tags"]) for r in rows] == [
        ("u-1", 550_000_000_000, None, None),
        ("u-2", 550_000_000_000, None, None),
        ("u-3", 550_000_000_000, "voice-app", '["beta", "voice"]'),
    ]
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone() == (_schema.SCHEMA_VERSION,)
    connection.close()
