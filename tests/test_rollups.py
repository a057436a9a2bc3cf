"""Answers from the rollups equal the raw-row answers: exact money and counts, percentiles
within 1 %, in any time zone, with window edges inside 15-minute periods, rows written by
other connections after the rollups were built, retention deletes, replaced spans, and a
store written before the rollups existed."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cost_workload import CALLS, WINDOW, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from polling import wait_until

from otel_gemini.aggregate import (
    CostStore,
    LocalCostSource,
    _store,
    parse_cost_query,
    parse_latency_query,
)
from otel_gemini.aggregate._percentiles import percentile
from otel_gemini.aggregate._periods import RAW, pieces
from otel_gemini.aggregate._reports import costliest_first
from otel_gemini.aggregate._rollups import KEYED_TABLES, ROLLUP_VERSION
from otel_gemini.aggregate._rows import COLUMNS
from otel_gemini.aggregate._schema import UPSERT, open_for_writing

DATA = Path(__file__).parent / "data"
OLD_STORE = DATA / "cost_store_written_by_main.sqlite3"
T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
T0_NS = int(T0.timestamp()) * 10**9
QUARTER_NS = 900 * 10**9
ZONES = ("UTC", "+05:45", "+05:30", "-03:30", "Europe/Paris", "Asia/Kathmandu")
COST_KEYS = ("user", "day", "model", "provider", "session")


def row(number: int, start_ns: int, **values: Any) -> tuple[Any, ...]:
    """A generations row as the writer stores it (defaults: a priced flash call)."""
    document: dict[str, Any] = {
        "trace_id": f"{number:032x}",
        "span_id": f"{number:016x}",
        "start_ns": start_ns,
        "end_ns": start_ns + 10**9,
        "user_id": "alice",
        "session_id": "s1",
        "model": "gemini-2.5-flash",
        "provider": "gcp.gemini",
        "operation": "generate_content",
        "input_tokens": 100,
        "output_tokens": 20,
        "total_tokens": 120,
        "usage_details": None,
        "cost_femto": 80_000_000_000,
        "input_cost_femto": 30_000_000_000,
        "output_cost_femto": 50_000_000_000,
        "cost_details": None,
        "cost_status": "priced",
        "prices_version": "test",
        "latency_ms": 1000.0,
        "ttft_ms": None,
        "is_error": 0,
        "error_type": None,
        "service_name": None,
        "tags": None,
        "request_model": None,
    }
    document.update(values)
    return tuple(document[column] for column in COLUMNS)


def write(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Writes through the writer's own statement, on a connection of its own."""
    connection = open_for_writing(path)
    try:
        connection.executemany(UPSERT, rows)
        connection.commit()
    finally:
        connection.close()


def both(path: Path, **options: Any) -> tuple[LocalCostSource, LocalCostSource]:
    return LocalCostSource(path, **options), LocalCostSource(path, rollups=False)


def cost_answers(source: LocalCostSource, params: dict[str, str]) -> dict[str, Any]:
    return source.costs(parse_cost_query(params, T0)).to_dict()


def assert_latency_close(fast: dict[str, Any], exact: dict[str, Any]) -> None:
    """Counts and maxima exact, means to float precision, percentiles within 1 %."""
    assert len(fast["groups"]) == len(exact["groups"])
    for mine, theirs in zip(fast["groups"], exact["groups"], strict=True):
        for field in ("requests", "errors"):
            assert mine[field] == theirs[field]
        for measure in ("latency_ms", "time_to_first_token_ms"):
            assert mine[measure]["count"] == theirs[measure]["count"]
            assert mine[measure]["max"] == theirs[measure]["max"]
            if theirs[measure]["mean"] is None:
                assert mine[measure]["mean"] is None
            else:
                assert mine[measure]["mean"] == pytest.approx(theirs[measure]["mean"], abs=2e-3)
            for name in ("p50", "p95", "p99"):
                if theirs[measure][name] is None:
                    assert mine[measure][name] is None
                else:
                    # 1 %, plus the 0.001 ms both are rounded to in JSON
                    assert abs(mine[measure][name] - theirs[measure][name]) <= (
                        0.01 * theirs[measure][name] + 0.002
                    )


# --- random stores -----------------------------------------------------------------------

_texts = st.sampled_from([None, "a", "b", "c"])
_rows = st.lists(
    st.tuples(
        st.integers(0, 4 * 96 * QUARTER_NS),  # start, within four days
        _texts,  # user
        _texts,  # session
        st.sampled_from([None, "gemini-2.5-flash", "gemini-2.5-pro", "gemini-9-unknown"]),
        st.sampled_from([None, "gcp.gemini", "gcp.vertex_ai"]),
        st.one_of(st.none(), st.integers(0, 2**62)),  # cost: up to $4,611 a row
        st.floats(0, 120_000, allow_nan=False),  # latency
        st.one_of(st.none(), st.floats(0, 5_000, allow_nan=False)),  # time to first token
        st.booleans(),  # error
    ),
    max_size=40,
)


def _random_row(number: int, values: tuple[Any, ...]) -> tuple[Any, ...]:
    start, user, session, model, provider, cost, latency, ttft, error = values
    unknown = model == "gemini-9-unknown"
    return row(
        number,
        T0_NS + start,
        user_id=user,
        session_id=session,
        model=model,
        provider=provider,
        cost_femto=None if unknown else cost,
        input_cost_femto=None if unknown or cost is None else cost // 3,
        output_cost_femto=None if unknown or cost is None else cost - cost // 3,
        cost_status="unknown_model" if unknown else "priced",
        input_tokens=number,
        output_tokens=2 * number,
        total_tokens=3 * number,
        latency_ms=latency,
        ttft_ms=ttft,
        is_error=int(error),
    )


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o700)
        yield Path(directory)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=_rows,
    later=_rows,
    zone=st.sampled_from(ZONES),
    start=st.integers(-900_000, 4 * 86_400_000),  # milliseconds from T0
    length=st.integers(1, 4 * 86_400_000),
    group_by=st.lists(st.sampled_from(COST_KEYS), unique=True, max_size=3),
    model_filter=st.sampled_from([None, "gemini-2.5-flash"]),
)
def test_rollup_answers_equal_raw_answers_on_random_stores(
    scratch: Path,
    first: list[tuple[Any, ...]],
    later: list[tuple[Any, ...]],
    zone: str,
    start: int,
    length: int,
    group_by: list[str],
    model_filter: str | None,
) -> None:
    path = scratch / f"store-{os.urandom(4).hex()}.sqlite3"
    write(path, [_random_row(i, values) for i, values in enumerate(first)])
    fast, raw = both(path, exact_percentile_rows=0)
    fast.rollups.refresh()  # type: ignore[union-attr]
    # Rows another connection writes after the build; some replace folded rows.
    write(path, [_random_row(i * 2, values) for i, values in enumerate(later)])
    begin = T0 + timedelta(milliseconds=start)
    params = {
        "from": begin.isoformat(),
        "to": (begin + timedelta(milliseconds=length)).isoformat(),
        "tz": zone,
        "group_by": ",".join(group_by),
    }
    if model_filter:
        params["model"] = model_filter
    assert cost_answers(fast, params) == cost_answers(raw, params)
    latency_params = dict(params, group_by=",".join(k for k in group_by if k in ("model", "day")))
    query = parse_latency_query(latency_params, T0)
    assert_latency_close(fast.latency(query).to_dict(), raw.latency(query).to_dict())


# --- what the random stores may miss, spelled out -------------------------------------------


def test_local_days_of_a_0545_zone_with_edges_inside_15_minute_periods(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    # Local midnight in +05:45 is 18:15 UTC. Rows just around it, and inside the quarters
    # the window's edges cut.
    midnight = T0_NS + (18 * 60 + 15) * 60 * 10**9
    offsets_s = [-1, 0, 1, 7 * 60, 14 * 60 + 59, 15 * 60, 86_400 - 1, 86_400, 86_400 + 60]
    write(path, [row(i, midnight + s * 10**9) for i, s in enumerate(offsets_s)])
    fast, raw = both(path)
    params = {
        # from 18:14:30 local day before, to 00:07:00 local two days later: mid-quarter
        "from": "2026-11-20T18:14:30Z",
        "to": "2026-11-21T18:22:00Z",
        "tz": "+05:45",
        "group_by": "day",
    }
    answer = cost_answers(fast, params)
    assert answer == cost_answers(raw, params)
    assert [(g["day"], g["requests"], g["cost"]) for g in answer["groups"]] == [
        ("2026-11-20", 1, "0.00008"),  # 18:14:59 UTC
        ("2026-11-21", 6, "0.00048"),  # 18:15:00 .. 18:14:59 the next day
        ("2026-11-22", 2, "0.00016"),  # 18:15:00 and 18:16:00 the next day
    ]


def test_rows_written_by_another_process_after_the_build_count(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    write(path, [row(i, T0_NS + i * 60 * 10**9) for i in range(100)])
    fast, raw = both(path)
    params = {"from": "2026-11-19", "to": "2026-11-22", "group_by": "model,day"}
    assert cost_answers(fast, params)["total"]["requests"] == 100
    write(path, [row(1000 + i, T0_NS + i * 61 * 10**9, model="gemini-2.5-pro") for i in range(50)])
    answer = cost_answers(fast, params)
    assert answer == cost_answers(raw, params)
    assert [g["requests"] for g in answer["groups"]] == [100, 50]


def test_rows_not_folded_yet_count_when_the_catch_up_cannot_run(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = scratch / "costs.sqlite3"
    write(path, [row(i, T0_NS + i * 60 * 10**9) for i in range(10)])
    fast, raw = both(path)
    assert fast.rollups is not None
    fast.rollups.refresh()
    write(path, [row(100 + i, T0_NS + i * 60 * 10**9, user_id="bob") for i in range(5)])
    # As when another process holds the lock for long, or the file is read-only.
    monkeypatch.setattr(fast.rollups, "refresh", lambda: None)
    params = {"from": "2026-11-19", "to": "2026-11-22", "group_by": "user,day"}
    answer = cost_answers(fast, params)
    assert answer == cost_answers(raw, params)
    assert [(g["user"], g["requests"]) for g in answer["groups"]] == [("alice", 10), ("bob", 5)]
    folded = sqlite3.connect(path).execute("SELECT folded_rowid FROM rollup_state").fetchone()
    assert folded == (10,)


def test_retention_deletes_leave_rollups_equal_to_the_rows_left(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    # Three days of a row every 10 minutes, the slowest first; retention keeps 1.5 days.
    rows = [row(i, T0_NS + i * 600 * 10**9, latency_ms=1000.0 - i) for i in range(3 * 144)]
    write(path, rows)
    fast, raw = both(path, exact_percentile_rows=0)
    fast.rollups.refresh()  # type: ignore[union-attr]
    now = (T0_NS + 3 * 86_400 * 10**9) / 1e9
    # The writer applies retention itself when idle; by the same clock, the call below
    # deletes whatever it has not yet.
    store = CostStore(path, retention_days=1.5, clock=lambda: now)
    try:
        store.apply_retention()
    finally:
        store.shutdown(10_000)
    assert cost_answers(raw, {"from": "2026-11-19", "to": "2026-11-24"})["total"]["requests"] == 216
    for group_by in ("", "day", "user,day", "model", "user", "session", "session,model"):
        params = {"from": "2026-11-19", "to": "2026-11-24", "group_by": group_by}
        assert cost_answers(fast, params) == cost_answers(raw, params)
    query = parse_latency_query({"from": "2026-11-19", "to": "2026-11-24", "group_by": "day"}, T0)
    fast_latency = fast.latency(query).to_dict()
    assert_latency_close(fast_latency, raw.latency(query).to_dict())
    # the maximum of the day the cutoff cuts (its slowest rows went) is that of the rows left
    assert [g["latency_ms"]["max"] for g in fast_latency["groups"]] == [784.0, 712.0]
    connection = sqlite3.connect(path)
    for table in ("rollup_by_model", *KEYED_TABLES):
        assert connection.execute(f"SELECT count(*) FROM {table} WHERE requests <= 0").fetchone()[
            0
        ] == (0)
    assert connection.execute("SELECT count(*) FROM rollup_latency WHERE n <= 0").fetchone() == (0,)


def test_a_span_written_again_after_it_was_folded_counts_once(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    write(path, [row(1, T0_NS, latency_ms=900.0), row(2, T0_NS + 10**9, latency_ms=100.0)])
    fast, raw = both(path, exact_percentile_rows=0)
    fast.rollups.refresh()  # type: ignore[union-attr]
    # The same span again (an exporter's retry), now with another cost and latency.
    write(path, [row(1, T0_NS, cost_femto=10**12, latency_ms=300.0)])
    params = {"from": "2026-11-19", "to": "2026-11-22", "group_by": "user"}
    answer = cost_answers(fast, params)
    assert answer == cost_answers(raw, params)
    assert (answer["total"]["requests"], answer["total"]["cost"]) == (2, "0.00108")
    query = parse_latency_query({"from": "2026-11-19", "to": "2026-11-22"}, T0)
    assert fast.latency(query).to_dict()["groups"][0]["latency_ms"]["max"] == 300.0


def test_percentiles_of_many_values_are_within_1_percent(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    import random

    rng = random.Random(5)
    latencies = [rng.lognormvariate(6, 1.2) for _ in range(3000)]
    write(
        path,
        [row(i, T0_NS + i * 20 * 10**9, latency_ms=v) for i, v in enumerate(latencies)],
    )
    fast = LocalCostSource(path, exact_percentile_rows=0)
    query = parse_latency_query({"from": "2026-11-19T23:59:59Z", "to": "2026-11-22"}, T0)
    group = fast.latency(query).groups[0]
    for name, p in (("p50", 50), ("p95", 95), ("p99", 99)):
        exact = percentile(latencies, p)
        assert exact is not None
        assert abs(getattr(group.latency_ms, name) - exact) <= 0.01 * exact


def test_a_store_written_before_the_rollups_is_answered_identically(scratch: Path) -> None:
    """The fixture was written by main's CostStore before the rollups existed (no
    rollup tables, no triggers): the first answer builds them; answers are the same."""
    path = scratch / "costs.sqlite3"
    shutil.copyfile(OLD_STORE, path)
    os.chmod(path, 0o600)
    connection = sqlite3.connect(path)
    assert connection.execute(
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'rollup%'"
    ).fetchone() == (0,)
    connection.close()
    fast, raw = both(path, exact_percentile_rows=0)
    window = {"from": "2026-11-01", "to": "2026-12-01"}
    for group_by in ("", "model", "day,model", "user", "session", "user,day,model"):
        for zone in ("UTC", "+05:45"):
            params = dict(window, group_by=group_by, tz=zone)
            assert cost_answers(fast, params) == cost_answers(raw, params)
    for group_by in ("model", "model,day", "provider"):
        query = parse_latency_query(dict(window, group_by=group_by), T0)
        assert_latency_close(fast.latency(query).to_dict(), raw.latency(query).to_dict())
    version = sqlite3.connect(path).execute("SELECT version FROM rollup_state").fetchone()
    assert version == (ROLLUP_VERSION,)


def test_rollups_an_earlier_main_built_are_rebuilt_in_this_layout(scratch: Path) -> None:
    """The fixture is the store above as main at 1cd4ac1 left it (its CostStore migrated
    it, its LocalCostSource built rollups of layout 3 and their triggers): the first
    answer drops them, builds this layout, answers as the rows do, and the new triggers
    take a replaced row out of every table."""
    path = scratch / "costs.sqlite3"
    shutil.copyfile(DATA / "cost_store_with_rollups_v3.sqlite3", path)
    os.chmod(path, 0o600)
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version, folded_rowid FROM rollup_state").fetchone() == (
        3,
        6,
    )
    connection.close()
    fast, raw = both(path, exact_percentile_rows=0)
    window = {"from": "2026-11-01", "to": "2026-12-01"}
    groupings = ("", "model", "day,model", "user", "session", "user,day,model")

    def assert_answers_equal() -> None:
        for group_by in groupings:
            for top in ((), ("2",)):
                params = dict(window, group_by=group_by)
                if top and group_by:
                    params["top"] = top[0]
                assert cost_answers(fast, params) == cost_answers(raw, params)

    assert_answers_equal()
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version, folded_rowid FROM rollup_state").fetchone() == (
        ROLLUP_VERSION,
        6,
    )
    for table in KEYED_TABLES:
        assert connection.execute(
            f"SELECT sum(requests) FROM {table} WHERE span = 96"
        ).fetchone() == (6,)
    connection.close()
    # The first row written again for another user and session: taken out, then added.
    first = connection_rows(path)[0]
    replaced = dict(zip(COLUMNS, first, strict=True))
    replaced.update(user_id="dave", session_id="s-dave")
    write(path, [tuple(replaced[column] for column in COLUMNS)])
    assert_answers_equal()
    users = cost_answers(fast, dict(window, group_by="user"))["groups"]
    assert [(g["user"], g["requests"]) for g in users] == [
        ("alice", 2),
        ("bob", 2),
        ("carol", 1),
        ("dave", 1),
    ]


def test_layout_3_is_upgraded_in_place_not_rebuilt(scratch: Path) -> None:
    """Layout 3's tables are kept and the two it lacked are summed from its per-model
    ones (refolding a 10M-row store took 11 minutes of raw-row answers): a mark left in
    its ``rollup_by_user`` shows up in the new ``rollup_user_totals``."""
    path = scratch / "costs.sqlite3"
    shutil.copyfile(DATA / "cost_store_with_rollups_v3.sqlite3", path)
    os.chmod(path, 0o600)
    connection = sqlite3.connect(path)
    marked = connection.execute(
        "UPDATE rollup_by_user SET errors = errors + 1000 WHERE span = 96 AND user_id = 'bob'"
    ).rowcount
    connection.commit()
    assert marked == 2  # bob's two days
    migrated = open_for_writing(path)  # the main schema first, as any writer would
    migrated.close()
    source = LocalCostSource(path)
    assert source.rollups is not None
    source.rollups.refresh()
    totals = connection.execute(
        "SELECT user_id, requests, errors FROM rollup_user_totals WHERE span = 96 "
        "ORDER BY user_id, q"
    ).fetchall()
    assert totals == [
        ("alice", 2, 0),
        ("alice", 1, 0),
        ("bob", 1, 1001),  # a failed call, and the mark
        ("bob", 1, 1000),
        ("carol", 1, 0),
    ]
    assert connection.execute("SELECT version FROM rollup_state").fetchone() == (ROLLUP_VERSION,)
    connection.close()


def connection_rows(path: Path) -> list[tuple[Any, ...]]:
    connection = open_for_writing(path)  # a store of an earlier schema is migrated first
    try:
        return connection.execute(
            f"SELECT {', '.join(COLUMNS)} FROM generations ORDER BY rowid"
        ).fetchall()
    finally:
        connection.close()


def test_rollups_of_another_version_are_rebuilt_or_left_alone(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    write(path, [row(i, T0_NS + i * 10**9) for i in range(5)])
    fast, raw = both(path)
    params = {"from": "2026-11-19", "to": "2026-11-22", "group_by": "model"}
    expected = cost_answers(raw, params)
    assert cost_answers(fast, params) == expected
    connection = sqlite3.connect(path)
    connection.execute("UPDATE rollup_state SET version = 0, folded_rowid = 99")
    connection.execute("UPDATE rollup_by_model SET requests = 1000")
    connection.commit()
    assert cost_answers(fast, params) == expected  # older: dropped and rebuilt
    connection.execute(f"UPDATE rollup_state SET version = {ROLLUP_VERSION + 1}")
    connection.commit()
    connection.close()
    assert cost_answers(fast, params) == expected  # newer: left alone, raw rows answer
    version = sqlite3.connect(path).execute("SELECT version FROM rollup_state").fetchone()
    assert version == (ROLLUP_VERSION + 1,)


def test_the_writer_folds_what_it_writes_once_the_rollups_exist(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    try:
        record(CALLS[:10], store)
        assert store.force_flush(10_000)
        fast, raw = both(path)
        assert cost_answers(fast, dict(WINDOW, group_by="model"))["total"]["requests"] == 10
        record(CALLS[10:], store)  # real spans through the real pricing pipeline
        assert store.force_flush(10_000)
        connection = sqlite3.connect(path)
        folded, top = connection.execute(
            "SELECT folded_rowid, (SELECT max(rowid) FROM generations) FROM rollup_state"
        ).fetchone()
        connection.close()
        assert folded == top  # folded by the writer, before any answer
    finally:
        store.shutdown(10_000)
    for group_by in ("model", "user,day", "session"):
        params = dict(WINDOW, group_by=group_by)
        answer = cost_answers(fast, params)
        assert answer == cost_answers(raw, params)
        assert answer["total"]["requests"] == len(CALLS)


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 5 * 96 * QUARTER_NS),
    length=st.integers(1, 5 * 96 * QUARTER_NS),
    spans=st.sampled_from([(1,), (96, 24, 1)]),
)
def test_signed_pieces_cover_each_moment_of_the_range_once(
    start: int, length: int, spans: tuple[int, ...]
) -> None:
    chosen = pieces([("", start, start + length)], spans)
    # Every quarter counted by the rollup pieces (sign included), and the raw ranges.
    counted: dict[int, int] = {}
    raw: list[tuple[int, int]] = []
    for piece in chosen:
        if piece.span == RAW:
            raw.append((piece.lo, piece.hi))
            continue
        assert piece.lo % piece.span == 0 and piece.hi % piece.span == 0
        for quarter in range(piece.lo, piece.hi):
            counted[quarter] = counted.get(quarter, 0) + piece.sign
    inside = {q for q, n in counted.items() if n}
    assert all(n in (0, 1) for n in counted.values())
    first, last = -(-start // QUARTER_NS), (start + length) // QUARTER_NS
    assert inside == set(range(first, last))
    raw_ns = sum(hi - lo for lo, hi in raw)
    rolled_ns = len(inside) * QUARTER_NS
    assert raw_ns + rolled_ns == length
    assert all(start <= lo < hi <= start + length for lo, hi in raw)
    # at most one period of each size at each end, and a few quarters: a handful of pieces
    assert len(chosen) <= 12


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=_rows,
    later=_rows,
    zone=st.sampled_from(ZONES),
    group_by=st.lists(st.sampled_from(COST_KEYS), unique=True, min_size=1, max_size=3),
    top=st.integers(1, 6),
    model_filter=st.sampled_from([None, "gemini-2.5-flash", "gemini-9-unknown"]),
)
def test_top_in_sql_equals_every_group_ranked_in_python(
    scratch: Path,
    first: list[tuple[Any, ...]],
    later: list[tuple[Any, ...]],
    zone: str,
    group_by: list[str],
    top: int,
    model_filter: str | None,
) -> None:
    """``top=N`` stops in SQL (rollups and raw rows alike) at exactly the groups, order,
    total and group count of the whole answer ranked by ``costliest_first``, from the
    rollups over every model and from those by model (a model filter) alike."""
    path = scratch / f"store-{os.urandom(4).hex()}.sqlite3"
    write(path, [_random_row(i, values) for i, values in enumerate(first)])
    fast, raw = both(path)
    fast.rollups.refresh()  # type: ignore[union-attr]
    write(path, [_random_row(i * 2, values) for i, values in enumerate(later)])
    params = {"from": "2026-11-19T23:00:00Z", "to": "2026-11-24", "tz": zone}
    params["group_by"] = ",".join(group_by)
    if model_filter:
        params["model"] = model_filter
    every = raw.costs(parse_cost_query(params, T0))
    ranked = costliest_first(list(every.groups))
    expected = every.to_dict()
    expected.update(
        groups=[group.to_dict() for group in ranked[:top]], top=top, group_count=len(ranked)
    )
    for source in (fast, raw):
        assert cost_answers(source, {**params, "top": str(top)}) == expected


def test_top_ranks_unknown_cost_last_and_ties_by_key(scratch: Path) -> None:
    rows = [
        row(1, T0_NS, user_id="carol", cost_femto=5 * 10**12),
        row(2, T0_NS, user_id="bob", cost_femto=5 * 10**12),
        row(
            3,
            T0_NS,
            user_id="dan",
            model="gemini-9-unknown",
            cost_femto=None,
            input_cost_femto=None,
            output_cost_femto=None,
            cost_status="unknown_model",
        ),
        row(
            4,
            T0_NS,
            user_id="erin",
            cost_femto=None,
            input_cost_femto=None,
            output_cost_femto=None,
            is_error=1,
            input_tokens=0,
            output_tokens=0,
            total_tokens=0,
        ),
        row(5, T0_NS, user_id="alice", cost_femto=2**62),
        row(6, T0_NS + 1, user_id="alice", cost_femto=2**62),
    ]
    write(scratch / "store.sqlite3", rows)
    params = {"from": "2026-11-19", "to": "2026-11-21", "group_by": "user", "top": "5"}
    for source in both(scratch / "store.sqlite3"):
        answer = cost_answers(source, params)
        assert [(g["user"], g["cost"]) for g in answer["groups"]] == [
            ("alice", "9223.372036854775808"),
            ("bob", "0.005"),
            ("carol", "0.005"),
            ("erin", "0"),  # a failed request that reported no usage costs nothing
            ("dan", None),
        ]
        assert (answer["group_count"], answer["total"]["cost"]) == (5, "9223.382036854775808")


# --- first build in the background, and its errors in health ---------------------------------


def test_answers_read_the_rows_while_a_background_build_runs(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS, store)
    store.shutdown(10_000)
    fast, raw = both(path)
    rollups = fast.rollups
    assert rollups is not None
    params = dict(WINDOW, group_by="user,model")
    with rollups._lock:  # a build that takes its time (as 40 s on a million rows)
        rollups._building.set()
        answer = cost_answers(fast, params)  # returns: does not wait for the build
        rollups._building.clear()
    assert answer == cost_answers(raw, params)
    rollups.start_building()
    wait_until(lambda: not rollups.building, what="the background build")
    connection = sqlite3.connect(path)
    folded, top = connection.execute(
        "SELECT folded_rowid, (SELECT max(rowid) FROM generations) FROM rollup_state"
    ).fetchone()
    connection.close()
    assert folded == top == len(CALLS)
    assert cost_answers(fast, params) == cost_answers(raw, params)
    assert rollups.problems() == []


def test_rollups_that_cannot_be_built_degrade_health_with_the_reason(scratch: Path) -> None:
    path = scratch / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS[:3], store)
    assert store.force_flush(10_000)
    connection = sqlite3.connect(path)
    # Something else owns the rollups' name: the build fails (DROP TABLE on a view).
    connection.execute("CREATE VIEW rollup_by_model AS SELECT 1 AS x")
    connection.commit()
    connection.close()
    try:
        store.rollups.start_building()
        wait_until(lambda: not store.rollups.building, what="the background build")
        assert store.rollups.errors == 1
        [reason] = store.problems()
        assert reason.startswith(f"cost store {path}: its rollups could not be updated 1 time(s)")
        assert reason.endswith("answers read the raw rows (exact, slower)")
        fast, raw = both(path)
        fast.rollups = store.rollups
        assert cost_answers(fast, WINDOW) == cost_answers(raw, WINDOW)  # exact all the same
    finally:
        store.shutdown(10_000)


class _NoFlush(SpanProcessor):
    """Hands spans on, but not flushes: the writer writes them when it will."""

    def __init__(self, store: CostStore) -> None:
        self.store = store

    def on_end(self, span: ReadableSpan) -> None:
        self.store.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_the_writer_folds_once_a_second_and_when_a_flush_waits(
    scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_store, "FOLD_INTERVAL_SECONDS", 3600.0)
    path = scratch / "costs.sqlite3"
    store = CostStore(path, retention_days=0)

    def folded_and_top() -> tuple[int, int]:
        connection = sqlite3.connect(path)
        try:
            return connection.execute(
                "SELECT folded_rowid, (SELECT max(rowid) FROM generations) FROM rollup_state"
            ).fetchone()
        finally:
            connection.close()

    try:
        record(CALLS[:10], store)
        assert store.force_flush(10_000)
        LocalCostSource(path).rollups.refresh()  # type: ignore[union-attr]
        record(CALLS[10:20], store)
        assert store.force_flush(10_000)  # a flush waits: folded, whatever the interval
        assert folded_and_top() == (20, 20)
        record(CALLS[20:], _NoFlush(store))
        wait_until(lambda: store.stats()["written"] == len(CALLS), what="the writer")
        assert folded_and_top() == (20, len(CALLS))  # written, not folded: within the second
        fast, raw = both(path)
        assert cost_answers(fast, WINDOW) == cost_answers(raw, WINDOW)  # answers fold the rest
        assert folded_and_top() == (len(CALLS), len(CALLS))
    finally:
        store.shutdown(10_000)


def test_budget_status_from_the_rollups_equals_the_raw_rows(scratch: Path) -> None:
    """The budgets' status (whole-period spend by total, user, session and model, and the
    anomaly rule's windows) reads the rollups when they are built: the same answer as from
    the raw rows, with rows the rollups have not folded yet, rows without a user or a
    model, unknown prices, periods cut at Paris midnights, and requests that named an alias
    (counted under it too, read apart from the rollups)."""
    from otel_gemini.budgets import BudgetRules, budget_status

    path = scratch / "costs.sqlite3"
    users = ("alice", "bob", None)
    models = ("gemini-2.5-flash-001", "gemini-2.5-pro", "gemini-9-unknown", None)
    # What the requests named: an alias, the same model spelled otherwise, or nothing else.
    requested = ("gemini-flash-latest", "models/gemini-2.5-pro", None, "gemini-pro-latest")
    rows = []
    for i in range(600):  # every 37 minutes: about 15 days from T0 - 5 days
        model = models[i % 4]
        unknown = model == "gemini-9-unknown"
        rows.append(
            row(
                i,
                T0_NS - 5 * 86_400 * 10**9 + i * 37 * 60 * 10**9,
                user_id=users[i % 3],
                session_id=f"s{i // 40}",
                model=model,
                request_model=requested[i % 4] if i % 5 else None,
                service_name="voice" if i % 2 else "chat",
                cost_femto=None if unknown else 10**12 + i * 7_919_000_000,
                cost_status="unknown_model" if unknown else "priced",
            )
        )
    raw_path = scratch / "raw.sqlite3"  # never rolled up: the raw rows answer
    write(raw_path, rows)
    write(path, rows[:500])
    rules = BudgetRules.parse(
        """
[[budget]]
name = "total-daily"
limit_usd = 1
timezone = "Europe/Paris"

[[budget]]
name = "user-hourly"
scope = "user"
period = "hour"
limit_usd = "0.01"

[[budget]]
name = "session-daily"
scope = "session"
limit_usd = "0.001"

[[budget]]
name = "model-monthly"
scope = "model"
period = "month"
limit_usd = "0.05"
timezone = "Europe/Paris"

[[budget]]
name = "service-daily"
scope = "service.name"
limit_usd = "0.01"

[[anomaly]]
name = "per-request"
by = "model"
"""
    )
    now = T0 + timedelta(days=7, hours=3, minutes=21, seconds=7, microseconds=11)
    raw = budget_status(rules, raw_path, now)
    source = LocalCostSource(path)
    assert source.rollups is not None
    source.rollups.refresh()
    write(path, rows[500:])  # not folded: read raw above the watermark
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT folded_rowid FROM rollup_state").fetchone() == (500,)
    connection.close()
    assert budget_status(rules, path, now) == raw
    source.rollups.refresh()
    assert budget_status(rules, path, now) == raw
    assert {b["rule"]: b["scope_values_with_spend"] for b in raw["budgets"]} == {
        "total-daily": 1,
        "user-hourly": 1,
        "session-daily": 2,
        "model-monthly": 5,  # flash, pro, the unknown model, and the two aliases
        "service-daily": 2,
    }
    # The model rule's spend from the rollups (and the alias rows apart) is what the rows'
    # own grouping by (model, request_model) gives, the path for named values.
    from otel_gemini.aggregate import unix_ns
    from otel_gemini.budgets import _ledger
    from otel_gemini.budgets._periods import period_of

    (monthly,) = [rule for rule in rules.budgets if rule.name == "model-monthly"]
    period = period_of(monthly.period, monthly.zone, unix_ns(now))
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rolled = _ledger.period_spend(connection, monthly, period)
        assert rolled == _ledger.period_spend(connection, monthly, period, set(rolled))
    assert sorted(rolled) == [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-9-unknown",
        "gemini-flash-latest",
        "gemini-pro-latest",
    ]


def test_a_top_of_a_thousand_groups_of_three_keys_equals_the_raw_rows(scratch: Path) -> None:
    """The chosen groups' sums are asked a few hundred key values at a time (SQLite before
    3.32 binds 999 parameters at most): 1,000 groups of three keys need four statements."""
    path = scratch / "costs.sqlite3"
    models = ("gemini-2.5-flash", "gemini-2.5-pro")
    write(
        path,
        [
            row(
                i,
                T0_NS + i * 97 * 10**9,
                user_id=f"u{i % 400}",
                model=models[i % 2],
                cost_femto=10**9 * (i % 977),
            )
            for i in range(6000)
        ],
    )
    fast, raw = both(path)
    fast.rollups.refresh()  # type: ignore[union-attr]
    params = {"from": "2026-11-19", "to": "2026-11-29", "group_by": "user,day,model", "top": "1000"}
    answer = cost_answers(fast, params)
    assert answer == cost_answers(raw, params)
    assert (len(answer["groups"]), answer["group_count"]) == (1000, 2800)
