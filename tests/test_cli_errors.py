"""Every entry point refuses a bad setting the same way: one line naming it, no traceback,
no secret, the documented exit status (2 usage/configuration, 1 runtime) — and
``configure()`` raises ``LangfuseConfigError`` with the very text the commands print.

The commands run as subprocesses with real argv and environment. Each fails before it
starts a server, so the whole matrix takes a few seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_gemini import configure
from otel_gemini.aggregate import CostStore, CostStoreConfigError, CostStoreOptions
from otel_gemini.export import LangfuseConfigError

REPO = Path(__file__).resolve().parent.parent
PUBLIC = "pk-lf-public-do-not-print"
SECRET = "sk-lf-secret-do-not-print"
KEYS = {"LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": SECRET}

# Langfuse misconfigurations: (id, environment, what the line must name)
LANGFUSE_CASES = [
    ("port-99999", {**KEYS, "LANGFUSE_BASE_URL": "http://localhost:99999"}, "LANGFUSE_BASE_URL"),
    ("space-in-host", {**KEYS, "LANGFUSE_BASE_URL": "http://lang fuse:3000"}, "LANGFUSE_BASE_URL"),
    (
        "api-public-suffix",
        {**KEYS, "LANGFUSE_BASE_URL": "https://cloud.langfuse.com/api/public"},
        "LANGFUSE_BASE_URL",
    ),
    ("ftp-scheme", {**KEYS, "LANGFUSE_BASE_URL": "ftp://cloud.langfuse.com"}, "LANGFUSE_BASE_URL"),
    ("no-host", {**KEYS, "LANGFUSE_BASE_URL": "https://"}, "LANGFUSE_BASE_URL"),
    ("host-alias-bad", {**KEYS, "LANGFUSE_HOST": "http://localhost:0"}, "LANGFUSE_HOST"),
    ("only-public-key", {"LANGFUSE_PUBLIC_KEY": PUBLIC}, "LANGFUSE_SECRET_KEY"),
    ("only-secret-key", {"LANGFUSE_SECRET_KEY": SECRET}, "LANGFUSE_PUBLIC_KEY"),
]
# Every command that reads LANGFUSE_* (health: when it inspects this machine's spool).
LANGFUSE_COMMANDS = {
    "gateway": ["gateway", "--grpc-port", "0", "--http-port", "0"],
    "serve": ["serve", "--port", "0"],
    "demo": ["demo", "--quiet"],
    "health": ["health"],
    "costs": ["costs"],
}


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Callable[..., Outcome]]:
    """Runs ``otel-gemini ARGV`` in a clean environment (no LANGFUSE_*, OTEL_*, Gemini
    keys; state and spool under ``tmp_path``) plus ``environment``."""

    def run_command(argv: list[str], environment: dict[str, str] | None = None) -> Outcome:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LANGFUSE_", "OTEL_", "GEMINI_", "GOOGLE_"))
        }
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "XDG_STATE_HOME": str(tmp_path / "state"),
                "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
                "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
                **(environment or {}),
            }
        )
        done = subprocess.run(
            [sys.executable, "-m", "otel_gemini.cli", *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        return Outcome(done.returncode, done.stdout, done.stderr)

    yield run_command


def assert_one_line(outcome: Outcome, command: str, named: str, code: int) -> str:
    """The failure's shape: exactly one stderr line, prefixed with the command and naming
    the setting, no traceback, no key; returns the message after the prefix."""
    assert "Traceback" not in outcome.stderr + outcome.stdout, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1 and outcome.stderr.endswith("\n"), outcome.stderr
    (line,) = lines
    prefix = f"otel-gemini {command}: "
    assert line.startswith(prefix), line
    assert named in line, line
    assert PUBLIC not in line and SECRET not in line, line
    assert outcome.code == code, (outcome.code, line)
    return line[len(prefix) :]


def _configure_error(environment: dict[str, str], tmp_path: Path) -> str:
    environment = {**environment, "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool")}
    with pytest.raises(LangfuseConfigError) as raised:
        configure(environ=environment, cost_store=False, instrument=False)
    return str(raised.value)


@pytest.mark.parametrize("command", sorted(LANGFUSE_COMMANDS))
@pytest.mark.parametrize(
    ("environment", "named"),
    [pytest.param(env, named, id=case) for case, env, named in LANGFUSE_CASES],
)
def test_a_bad_langfuse_setting_is_one_line_exit_2_with_configures_message(
    command: str,
    environment: dict[str, str],
    named: str,
    run: Callable[..., Outcome],
    tmp_path: Path,
) -> None:
    outcome = run(LANGFUSE_COMMANDS[command], environment)
    message = assert_one_line(outcome, command, named, 2)
    assert message == _configure_error(environment, tmp_path)


def _bad_prices(tmp_path: Path) -> str:
    path = tmp_path / "prices.toml"
    path.write_text('[[model]]\nnames = ["my-model"]\ninput = -1\n')
    return str(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--quiet"],
        ["gateway", "--grpc-port", "0", "--http-port", "0"],
        ["prices"],
        ["collector-config", "ottl"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_bad_price_file_is_one_line_exit_2(
    argv: list[str], run: Callable[..., Outcome], tmp_path: Path
) -> None:
    environment = {"OTEL_GEMINI_PRICES": _bad_prices(tmp_path), **KEYS}
    if argv[0] == "demo":
        environment = {"OTEL_GEMINI_PRICES": environment["OTEL_GEMINI_PRICES"]}
    outcome = run(argv, environment)
    assert_one_line(outcome, argv[0], "OTEL_GEMINI_PRICES", 2)


@pytest.mark.parametrize("option", ["--prices"], ids=["prices-option"])
@pytest.mark.parametrize("command", ["prices", "collector-config"])
def test_a_bad_prices_option_is_one_line_exit_2(
    command: str, option: str, run: Callable[..., Outcome], tmp_path: Path
) -> None:
    argv = ["prices"] if command == "prices" else ["collector-config", "ottl"]
    path = _bad_prices(tmp_path)
    outcome = run([*argv, option, path])
    assert_one_line(outcome, command, "prices.toml", 2)


@pytest.mark.parametrize("kind", ["directory", "not-sqlite"])
def test_demo_with_an_unusable_db_is_one_line_exit_2(
    kind: str, run: Callable[..., Outcome], tmp_path: Path
) -> None:
    path = tmp_path / "store"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("these are not the rows you are looking for\n" * 100)
    outcome = run(["demo", "--quiet", "--db", str(path)])
    assert_one_line(outcome, "demo", "--db", 2)


@pytest.mark.parametrize("kind", ["missing", "not-sqlite"])
def test_costs_with_a_missing_or_corrupt_store_is_one_line_exit_1(
    kind: str, run: Callable[..., Outcome], tmp_path: Path
) -> None:
    path = tmp_path / "store.sqlite3"
    if kind == "not-sqlite":
        path.write_text("not a database\n" * 100)
    outcome = run(["costs", "--db", str(path)])
    assert_one_line(outcome, "costs", str(path), 1)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process listens on (this one, for the test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("serve", "--port"),
        ("gateway", "--http-port"),
        ("gateway", "--grpc-port"),
    ],
)
def test_a_taken_port_is_named_before_anything_is_announced(
    command: str, option: str, taken_port: int, run: Callable[..., Outcome]
) -> None:
    argv = [command, option, str(taken_port)]
    if command == "gateway":
        other = "--grpc-port" if option == "--http-port" else "--http-port"
        argv += [other, "0"]
    environment = {**KEYS, "LANGFUSE_BASE_URL": "http://127.0.0.1:9"}
    outcome = run(argv, environment)
    message = assert_one_line(outcome, command, f"{option} {taken_port}", 2)
    assert "already in use" in message
    assert outcome.stdout == ""  # no "listening" line for an address it does not have


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["serve", "--log-level", "bogus"], "--log-level"),
        (["serve", "--port", "99999"], "--port"),
        (["gateway", "--http-port", "http"], "--http-port"),
        (["costs", "--source", "elsewhere"], "--source"),
        (["demo", "--langfuse", "maybe"], "--langfuse"),
        (["health", "--timeout", "soon"], "--timeout"),
        (["health", "--url", "http://[::1"], "--url"),
        (["serve", "--host", "no-such-host.invalid", "--port", "0"], "--host"),
    ],
    ids=lambda value: value if isinstance(value, str) else "-".join(value[:2]),
)
def test_a_bad_option_is_one_line_exit_2(
    argv: list[str], named: str, run: Callable[..., Outcome]
) -> None:
    outcome = run(argv)
    assert_one_line(outcome, argv[0], named, 2)


def test_health_of_a_url_that_is_not_a_health_endpoint_says_so(
    run: Callable[..., Outcome], tmp_path: Path
) -> None:
    from otel_gemini.testing import FakeLangfuse

    # Any HTTP server that is not ours: the fake Langfuse answers 404 on this path.
    with FakeLangfuse() as langfuse:
        outcome = run(["health", "--url", f"{langfuse.base_url}/nope"])
    message = assert_one_line(outcome, "health", "/nope", 3)
    assert "is not an otel-gemini health endpoint (HTTP 404" in message


def test_help_documents_the_exit_statuses(run: Callable[..., Outcome]) -> None:
    outcome = run(["--help"])
    assert outcome.code == 0
    assert "exit status:" in outcome.stdout
    for line in ("0    done", "1    a runtime failure", "2    a usage or configuration error"):
        assert line in outcome.stdout


@pytest.mark.parametrize(
    "argv",
    [["gateway", "--grpc-port", "0", "--http-port", "0"], ["serve", "--port", "0"]],
    ids=lambda argv: argv[0],
)
def test_a_bad_spool_size_is_one_line_exit_2(argv: list[str], run: Callable[..., Outcome]) -> None:
    environment = {**KEYS, "OTEL_GEMINI_SPOOL_MAX_BYTES": "lots"}
    outcome = run(argv, environment)
    assert_one_line(outcome, argv[0], "OTEL_GEMINI_SPOOL_MAX_BYTES", 2)


NEGATIVE_RETENTION = (
    "retention_days / OTEL_GEMINI_COST_RETENTION_DAYS / --retention-days must be 0 or more "
    "days (got -1)"
)


def test_a_negative_retention_is_the_same_line_from_configure_the_store_env_and_cli(
    run: Callable[..., Outcome], tmp_path: Path
) -> None:
    """One check, one message, wherever the cost store's retention comes from."""
    db = tmp_path / "costs.sqlite3"
    messages = []
    cases: list[tuple[CostStoreOptions, dict[str, str]]] = [
        ({"retention_days": -1}, {}),
        ({}, {"OTEL_GEMINI_COST_RETENTION_DAYS": "-1"}),
    ]
    for options, environment in cases:
        with pytest.raises(CostStoreConfigError) as raised:
            configure(
                environ=environment,
                cost_store=db,
                cost_store_options=options,
                instrument=False,
                langfuse=False,
            )
        messages.append(str(raised.value))
    with pytest.raises(ValueError) as refused:  # CostStore's own check, as before
        CostStore(db, retention_days=-1)
    messages.append(str(refused.value))
    gateway = ["gateway", "--grpc-port", "0", "--http-port", "0", "--db", str(db)]
    outcomes = [
        ("gateway", run([*gateway, "--retention-days", "-1"], KEYS)),
        ("gateway", run(gateway, {**KEYS, "OTEL_GEMINI_COST_RETENTION_DAYS": "-1"})),
        ("demo", run(["demo", "--quiet"], {"OTEL_GEMINI_COST_RETENTION_DAYS": "-1"})),
    ]
    for command, outcome in outcomes:
        messages.append(assert_one_line(outcome, command, "--retention-days", 2))
    assert messages == [NEGATIVE_RETENTION] * 6
    assert not db.exists()  # refused before anything was opened


def test_every_otel_gemini_variable_is_named_in_one_module() -> None:
    """Each ``OTEL_GEMINI_*`` variable is spelled in one module, the home of its setting;
    everything else imports the name from there (help text may mention it)."""
    import ast
    import re

    homes: dict[str, set[str]] = {}
    for path in sorted((REPO / "otel_gemini").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and re.fullmatch(r"OTEL_GEMINI_[A-Z0-9_]+", node.value)
            ):
                homes.setdefault(node.value, set()).add(str(path.relative_to(REPO)))
    shared = {name: sorted(paths) for name, paths in homes.items() if len(paths) > 1}
    assert shared == {}
    assert homes["OTEL_GEMINI_COST_RETENTION_DAYS"] == {"otel_gemini/aggregate/_settings.py"}
