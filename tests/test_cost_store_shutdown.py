"""No generation the cost store accepted leaves uncounted: when ``shutdown(timeout)`` gives
up (another process holds the database, the writer stopped on errors), every generation it
leaves unwritten is counted once as ``shutdown_timeout``, shown in stats and health, logged in
one line and recorded in the file, where another process's answers and health see it; a
forked child neither writes nor forgets its parent's queue. Real OTel SDK, real
CostSpanProcessor, real SQLite files and locks, real subprocesses."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import iso, run_cli
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from polling import wait_until

from otel_gemini import CostSpanProcessor
from otel_gemini import _attributes as attrs
from otel_gemini.aggregate import CostStore, _store
from otel_gemini.aggregate._rows import COLUMNS
from otel_gemini.aggregate._schema import HOUR_NS

NOW_NS = time.time_ns()
HOUR = (NOW_NS // HOUR_NS - 1) * HOUR_NS  # the hour before this one: "in the last 24 h"
EARLIER = HOUR - HOUR_NS
FLASH = {
    attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
    attrs.GEN_AI_PROVIDER_NAME: attrs.PROVIDER_GEMINI,
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 1000,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 200,
}
AGENT = {attrs.GEN_AI_OPERATION_NAME: attrs.OP_INVOKE_AGENT}  # no generation: never a row


class Pipeline:
    """A TracerProvider whose spans go through the real cost processor to ``store``."""

    def __init__(self, store: CostStore) -> None:
        self.store = store
        provider = TracerProvider(resource=Resource.create({"service.name": "checkout"}))
        provider.add_span_processor(CostSpanProcessor(store))
        self._tracer = provider.get_tracer("test")

    def spans(self, count: int, attributes: dict[str, Any], start_ns: int) -> None:
        for index in range(count):
            span = self._tracer.start_span("generate_content gemini-2.5-flash", start_time=start_ns)
            span.set_attributes(attributes)
            span.end(end_time=start_ns + index + 250 * 10**6)


@contextlib.contextmanager
def write_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock (``BEGIN IMMEDIATE``) until the
    block ends (or ``rollback()``): the store's writer cannot commit meanwhile."""
    connection = sqlite3.connect(db, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield connection
    finally:
        if connection.in_transaction:
            connection.rollback()
        connection.close()


def _file(db: Path) -> tuple[int, list[tuple[int, str, int]]]:
    """The rows and the recorded drops (hour, reason, count) in the file."""
    with contextlib.closing(sqlite3.connect(db)) as connection:
        rows = connection.execute("SELECT count(*) FROM generations").fetchone()[0]
        drops = connection.execute(
            "SELECT hour_ns, reason, count FROM dropped_generations ORDER BY hour_ns"
        ).fetchall()
    return int(rows), drops


def test_generations_a_locked_database_kept_unwritten_at_shutdown_are_counted_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0, exported_to="Langfuse")
    pipeline = Pipeline(store)
    # Long enough for this test to release the lock once it has seen the count (the
    # recording retries until then); the default is 1 s.
    monkeypatch.setattr(_store, "SHUTDOWN_SETTLE_SECONDS", 60.0)
    caplog.set_level(logging.WARNING, logger="otel_gemini.aggregate")
    with write_lock(db) as lock:
        pipeline.spans(30, FLASH, HOUR + 60 * 10**9)
        pipeline.spans(20, FLASH, EARLIER + 60 * 10**9)
        pipeline.spans(7, AGENT, HOUR + 60 * 10**9)  # not generations: not drops either
        shutting_down = threading.Thread(target=store.shutdown, args=(300,))
        shutting_down.start()
        wait_until(
            lambda: store.stats()["dropped"]["shutdown_timeout"] == 50,
            what="shutdown to give the 50 generations up",
        )
        stats = store.stats()
        assert (stats["written"], stats["queued"], stats["skipped"]) == (0, 0, 7)
        assert stats["dropped"] == {
            "queue_full": 0,
            "shutdown": 0,
            "write_error": 0,
            "read_error": 0,
            "shutdown_timeout": 50,
        }
        (problem,) = store.problems()
        assert problem == (
            f"cost store {db}: 50 generation(s) were still unwritten when its shutdown gave "
            "up (shutdown_timeout, see the log); local cost answers miss them; Langfuse "
            "still has them"
        )
        lock.rollback()  # the file can be written again: shutdown records the drops
        shutting_down.join(30)
        assert not shutting_down.is_alive()
    (line,) = [r.getMessage() for r in caplog.records if "shutdown gave up" in r.getMessage()]
    assert line == (
        f"otel-gemini cost store {db}: shutdown gave up on 50 generation(s) still unwritten "
        "after 0.3 s (the database locked or slow, or a long queue); counted as dropped "
        "(shutdown_timeout), recorded in its file, so local answers over their hours say so "
        "('dropped'); Langfuse still has them"
    )
    assert store.stats()["dropped"]["shutdown_timeout"] == 50  # counted once
    assert store.loop_status().state == "finished"
    assert _file(db) == (0, [(EARLIER, "shutdown_timeout", 20), (HOUR, "shutdown_timeout", 30)])

    # Another process reading the file sees them: health, and the answers over each hour.
    health = run_cli("health", "--db", str(db), "--json")
    assert health.returncode == 1, health.stderr  # degraded
    report = json.loads(health.stdout)
    assert report["cost_store"]["dropped_last_24h"] == {"shutdown_timeout": 50}
    (reason,) = report["cost_store"]["reasons"]
    assert reason.startswith(f"cost store {db}: 50 generation(s) dropped in the last 24 h")
    for start, dropped in ((HOUR, 30), (EARLIER, 20)):
        window = ("--from", iso(start), "--to", iso(start + HOUR_NS), "--db", str(db))
        costs = run_cli("costs", *window, "--json")
        assert costs.returncode == 0, costs.stderr
        document = json.loads(costs.stdout)
        assert (document["dropped"], document["total"]["requests"]) == (dropped, 0)


def test_when_the_file_stays_locked_the_log_says_the_drops_are_not_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0)
    pipeline = Pipeline(store)
    monkeypatch.setattr(_store, "SHUTDOWN_SETTLE_SECONDS", 0.3)
    caplog.set_level(logging.WARNING, logger="otel_gemini.aggregate")
    with write_lock(db):
        pipeline.spans(12, FLASH, HOUR)
        store.shutdown(200)
        assert store.stats()["dropped"]["shutdown_timeout"] == 12
        assert store.stats()["written"] == 0
    (line,) = [r.getMessage() for r in caplog.records if "shutdown gave up" in r.getMessage()]
    assert "shutdown gave up on 12 generation(s) still unwritten after 0.2 s" in line
    assert "NOT recorded in its file (OperationalError: database is locked)" in line
    assert line.endswith(
        "so local answers over their hours do not say so; they are lost (no export: the "
        "cost store was their only record)"
    )
    assert _file(db) == (0, [])
    assert store.stats()["dropped"]["shutdown_timeout"] == 12


def test_a_writer_that_stopped_on_errors_leaves_nothing_uncounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_insert(*args: object, **kwargs: object) -> tuple[int, bool]:
        raise RuntimeError("a bug in the insert")

    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0)
    pipeline = Pipeline(store)
    monkeypatch.setattr(_store, "_insert", broken_insert)
    pipeline.spans(9, FLASH, HOUR)
    assert store.force_flush(100) is False
    wait_until(lambda: store.loop_status().errors >= 1, what="the writer to fail on its batch")
    # Asked to stop, it tries its batch once more and finishes with it unwritten in hand.
    store.shutdown(0)
    stats = store.stats()
    assert stats["dropped"]["shutdown_timeout"] == 9
    assert stats["written"] + stats["dropped"]["write_error"] == 0
    assert store.loop_status().state == "finished"
    monkeypatch.undo()
    assert _file(db) == (0, [(HOUR, "shutdown_timeout", 9)])


def test_a_shutdown_in_time_writes_everything_and_counts_no_drop(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0, batch_delay=60)
    Pipeline(store).spans(40, FLASH, HOUR)
    assert store.stats()["queued"] == 40
    store.shutdown(30_000)
    stats = store.stats()
    assert (stats["written"], stats["queued"], sum(stats["dropped"].values())) == (40, 0, 0)
    assert _file(db) == (40, [])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_neither_writes_nor_forgets_its_parents_queue(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0, batch_delay=60)  # the queue waits for a flush
    pipeline = Pipeline(store)
    pipeline.spans(25, FLASH, HOUR)
    assert store.stats()["queued"] == 25
    pid = os.fork()
    if pid == 0:  # the child: its store holds nothing of its parent's, and writes nothing
        code = 1
        try:
            before = store.stats()
            pipeline.spans(3, {**FLASH, attrs.USER_ID: "child"}, HOUR)
            store.shutdown(10_000)
            after = store.stats()
            fresh = (before["queued"], before["written"]) == (0, 0)
            own = (after["written"], sum(after["dropped"].values())) == (3, 0)
            code = 0 if fresh and own else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.shutdown(10_000)  # the parent writes its own queue
    stats = store.stats()
    assert (stats["written"], sum(stats["dropped"].values())) == (25, 0)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        users = connection.execute(
            "SELECT user_id, count(*) FROM generations GROUP BY user_id ORDER BY user_id"
        ).fetchall()
    assert users == [(None, 25), ("child", 3)]
    assert _file(db)[1] == []


def test_rows_committed_before_shutdown_gives_up_count_as_written_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer counts a batch as soon as its transaction commits: a commit listener (or
    the rollups' fold) still running when shutdown's time runs out does not get the rows it
    wrote counted as dropped too."""
    monkeypatch.setattr(_store, "SHUTDOWN_SETTLE_SECONDS", 0.2)
    db = tmp_path / "costs.sqlite3"
    store = CostStore(db, retention_days=0)
    listening = threading.Event()
    release = threading.Event()

    def slow_listener(committed: Any) -> None:
        listening.set()
        release.wait(60)

    store.add_commit_listener(slow_listener)
    Pipeline(store).spans(40, FLASH, HOUR + 60 * 10**9)
    wait_until(listening.is_set, timeout=30)
    store.shutdown(100)  # gives up while the listener holds the writer
    stats = store.stats()
    release.set()
    assert stats["written"] == 40
    assert stats["dropped"][_store.DROP_SHUTDOWN_TIMEOUT] == 0
    assert _file(db) == (40, [])


def test_a_writer_of_the_previous_version_keeps_writing_to_a_store_this_one_opened(
    tmp_path: Path,
) -> None:
    """The ``request_model`` column does not raise the schema version: main at 1cd4ac1
    refuses a store above version 2 and inserts by column name, so during a rolling upgrade
    its writers keep writing to a file this version opened (their rows leave it NULL)."""
    db = tmp_path / "costs.sqlite3"
    CostStore(db, retention_days=0).shutdown(5000)
    old_columns = [c for c in COLUMNS if c != "request_model"]
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        values = {c: None for c in old_columns}
        values.update(
            trace_id="0" * 32,
            span_id="1" * 16,
            start_ns=HOUR,
            end_ns=HOUR + 1,
            input_tokens=1,
            output_tokens=1,
            total_tokens=2,
            latency_ms=1.0,
            is_error=0,
        )
        with connection:  # the previous version's INSERT
            connection.execute(
                f"INSERT OR REPLACE INTO generations ({', '.join(old_columns)}) "
                f"VALUES ({', '.join('?' for _ in old_columns)})",
                [values[c] for c in old_columns],
            )
        assert connection.execute(
            "SELECT count(*), max(request_model) FROM generations"
        ).fetchone() == (1, None)


def test_a_store_with_the_added_column_and_without_its_index_gets_the_index(
    tmp_path: Path,
) -> None:
    """A store whose ``request_model`` an earlier build added without its partial index
    (version 2, no column missing) gets the index on the next writer's open."""
    db = tmp_path / "costs.sqlite3"
    CostStore(db, retention_days=0).shutdown(5000)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("DROP INDEX generations_by_request_model")
    CostStore(db, retention_days=0).shutdown(5000)
    with contextlib.closing(sqlite3.connect(db)) as connection:
        names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert "generations_by_request_model" in names
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
