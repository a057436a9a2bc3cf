"""A forked child's rollups: its own writer folds its rows, and its answers never wait on
what a thread of the parent held at ``fork()`` (a catch-up's lock, a background build).

Prefork servers (gunicorn ``--preload``) fork workers from a process whose answering app
(``Telemetry.asgi_app()``) shares the store's ``Rollups``; the parent's threads are not in
the child. Before the fix, a catch-up in progress at ``fork()`` left its lock held in the
child for ever (the child's first answer hung), and a background build left the child's
answers on the raw rows for ever.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cost_workload import CALLS, WINDOW, record
from polling import wait_until

from otel_gemini.aggregate import CostStore, LocalCostSource, parse_cost_query

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

T0 = datetime(2026, 11, 20, tzinfo=timezone.utc)
PARENT_CALLS = CALLS[:10]
CHILD_CALLS = CALLS[10:]
GROUPINGS = ("model", "user,day", "session", "user,model")


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o700)
        yield Path(directory)


def _answers(source: LocalCostSource) -> dict[str, Any]:
    return {
        group_by: source.costs(parse_cost_query(dict(WINDOW, group_by=group_by), T0)).to_dict()
        for group_by in GROUPINGS
    }


def _folded_and_top(path: Path) -> list[int]:
    connection = sqlite3.connect(path)
    try:
        folded, top = connection.execute(
            "SELECT folded_rowid, (SELECT max(rowid) FROM generations) FROM rollup_state"
        ).fetchone()
    finally:
        connection.close()
    return [folded, top]


def _in_child(store: CostStore, fast: LocalCostSource, raw: LocalCostSource) -> dict[str, Any]:
    """What the child finds: its writer's rows and fold, then its answers against the raw
    rows', while its own build (if any) runs and once it has finished."""
    record(CHILD_CALLS, store)
    flushed = store.force_flush(10_000)
    folded_by_writer = _folded_and_top(store.path)  # before any answer could fold
    rollups = store.rollups
    first = _answers(fast)  # hung here when the parent's lock came along held
    wait_until(lambda: not rollups.building, what="the child's own build")
    return {
        "flushed": flushed,
        "written": store.stats()["written"],
        "folded_by_writer": folded_by_writer,
        "first_equal_raw": first == _answers(raw),
        "equal_raw_after_build": _answers(fast) == _answers(raw),
        "requests": _answers(fast)["model"]["total"]["requests"],
        "folded_after": _folded_and_top(store.path),
        "problems": store.problems(),
    }


def _wait_for_child(pid: int, timeout: float = 30.0) -> int:
    """The child's exit code; a child still running after ``timeout`` is killed (a hang)."""
    status: list[int] = []

    def ended() -> bool:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status.append(code)
        return bool(done)

    try:
        wait_until(ended, timeout=timeout, what="the forked child")
    except TimeoutError:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise
    return os.waitstatus_to_exitcode(status[0])


@pytest.mark.parametrize("in_progress", ["catch-up", "background build"])
def test_a_forked_child_folds_its_rows_and_answers_what_the_rows_say(
    scratch: Path, in_progress: str
) -> None:
    path = scratch / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    try:
        record(PARENT_CALLS, store)
        assert store.force_flush(10_000)
        # As Telemetry.asgi_app(): the answers share the store's view of its rollups.
        fast = LocalCostSource(path)
        fast.rollups = store.rollups
        raw = LocalCostSource(path, rollups=False)
        assert _answers(fast)["model"]["total"]["requests"] == len(PARENT_CALLS)  # built
        # A thread of the parent is inside a catch-up (or the background build) at fork().
        rollups = store.rollups
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with rollups._lock:
                if in_progress == "background build":
                    rollups._building.set()
                holding.set()
                release.wait()
                rollups._building.clear()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert holding.wait(10)
        result_path = scratch / "child.json"
        pid = os.fork()
        if pid == 0:  # the child: reports what it found, and exits whatever happens
            code = 1
            try:
                result_path.write_text(json.dumps(_in_child(store, fast, raw)))
                code = 0
            finally:
                os._exit(code)
        try:
            assert _wait_for_child(pid) == 0
        finally:
            release.set()
            holder.join(10)
        everything = len(CALLS)
        assert json.loads(result_path.read_text()) == {
            "flushed": True,
            "written": len(CHILD_CALLS),  # the child's own writer, its own counters
            "folded_by_writer": [everything, everything],
            "first_equal_raw": True,
            "equal_raw_after_build": True,
            "requests": everything,
            "folded_after": [everything, everything],
            "problems": [],
        }
        # The parent: its own writer and rollups go on; its answers see the child's rows.
        assert store.stats()["written"] == len(PARENT_CALLS)
        assert not rollups.building
        assert _answers(fast) == _answers(raw)
        assert _answers(fast)["model"]["total"]["requests"] == everything
    finally:
        store.shutdown(10_000)
