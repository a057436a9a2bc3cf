"""``otel-gemini costs`` (table, JSON, latency, errors) and ``otel-gemini serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from cost_workload import CALLS, WINDOW, expected_costs, record

from otel_gemini.aggregate import CostStore
from otel_gemini.cli import main


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "costs.sqlite3"
    store = CostStore(path, retention_days=0)
    record(CALLS, store)
    store.shutdown(10_000)
    return path


WINDOW_ARGS = ["--from", WINDOW["from"], "--to", WINDOW["to"]]


def test_costs_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--db", str(db), "--by", "user,model", *WINDOW_ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2026-11-19T00:00:00Z .. 2026-11-25T00:00:00Z (UTC), source local"
    assert lines[1].split() == [
        "user",
        "model",
        "cost",
        "(USD)",
        "input",
        "tok",
        "output",
        "tok",
        "requests",
        "errors",
    ]
    expected = expected_costs(("user", "model"))
    rows = lines[3:]
    assert len(rows) == len(expected) + 1
    for line, group in zip(rows, expected, strict=False):
        cells = line.split()
        assert cells[0] == (group["user"] or "(none)")
        assert cells[1] == group["model"]
        assert cells[2] == f"${group['cost']}"
        assert cells[-2:] == [str(group["requests"]), str(group["errors"])]
    total = expected_costs(())[0]
    assert rows[-1].split()[:2] == ["TOTAL", f"${total['cost']}"]


def test_costs_json_is_the_api_document(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "costs",
                "--db",
                str(db),
                "--by",
                "day",
                "--tz",
                "Asia/Kolkata",
                "--json",
                *WINDOW_ARGS,
            ]
        )
        == 0
    )
    document = json.loads(capsys.readouterr().out)
    assert document["groups"] == expected_costs(("day",), "Asia/Kolkata")
    assert (document["source"], document["tz"]) == ("local", "Asia/Kolkata")


def test_latency_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--db", str(db), "--latency", *WINDOW_ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:5] == ["model", "requests", "errors", "p50", "ms"]
    flash = next(line for line in lines if line.startswith("gemini-2.5-flash"))
    assert flash.split()[1:4] == ["21", "1", "(4.8%)"]


def test_bad_options_name_the_option(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--db", str(db), "--by", "colour"]) == 2
    assert "--by: cannot group by 'colour'" in capsys.readouterr().err
    assert main(["costs", "--db", str(db), "--from", "last week"]) == 2
    assert "--from: not an ISO 8601 date" in capsys.readouterr().err
    assert main(["costs", "--db", str(db), "--source", "langfuse"]) == 2
    assert "--source: Langfuse is not configured" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve(db: Path) -> None:
    port = _free_port()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LANGFUSE_")
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_gemini.cli",
            "serve",
            "--db",
            str(db),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/observability/costs",
                    params={**WINDOW, "group_by": "model"},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.05)  # polling for the port with a deadline
        assert response.status_code == 200
        assert response.json()["groups"] == expected_costs(("model",))
        health = httpx.get(f"http://127.0.0.1:{port}/api/observability/health", timeout=2)
        assert (health.status_code, health.json()["status"]) == (503, "unknown")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert b"otel-gemini serve: http://127.0.0.1" in stderr


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "there is no cost store at"),
        ("directory", "is not a file"),
        ("empty file", "is not an otel-gemini cost store"),
    ],
)
def test_no_store_is_one_line_and_exit_1(
    tmp_path: Path, kind: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "costs.sqlite3"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty file":
        path.write_bytes(b"")
    assert main(["costs", "--db", str(path), *WINDOW_ARGS]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("otel-gemini costs: ")
    assert message in captured.err and str(path) in captured.err


def test_costs_top_prints_the_costliest_groups_and_the_whole_total(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["costs", "--db", str(db), "--by", "user", "--top", "1", *WINDOW_ARGS]) == 0
    lines = capsys.readouterr().out.splitlines()
    every = expected_costs(("user",))
    costliest = max(every, key=lambda group: Decimal(group["cost"]))
    assert lines[3].split()[:2] == [costliest["user"], f"${costliest['cost']}"]
    assert lines[4].split()[:2] == ["TOTAL", f"${expected_costs(())[0]['cost']}"]
    assert lines[5] == f"(the 1 most costly of {len(every)} groups)"
    assert main(["costs", "--db", str(db), "--top", "0"]) == 2
    assert "--top: must be a whole number from 1 to 1000" in capsys.readouterr().err
    assert main(["costs", "--db", str(db), "--latency", "--top", "3"]) == 2
    assert "--top:" in capsys.readouterr().err
