"""The light install: the core needs none of the extras, and what needs one says which.

``test_a_fresh_core_install_prices_and_exports`` builds a fresh venv with ``pip install
<repo>`` (no extras; pip's cache makes it ~15 s), runs the app there and the fakes here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import venv
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from otel_gemini import _attributes as attrs
from otel_gemini.testing import FakeGemini, FakeLangfuse, ScriptedUsage

REPO = Path(__file__).resolve().parent.parent
# Installed only by an extra: the core must not import them.
OPTIONAL = ("grpc", "uvicorn", "starlette", "cryptography", "langfuse")

FLASH = "gemini-2.5-flash"
USAGE = ScriptedUsage(prompt=1000, candidates=200, thoughts=100)
COST = Decimal("0.00105")  # 1000 * $0.30/1M input + 300 * $2.50/1M output (thinking included)


def _imported_top_level(python: str, code: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages ``python -X importtime -c code`` imported."""
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


@pytest.mark.parametrize(
    "code",
    [
        "import otel_gemini",
        # the whole pipeline's modules, and the CLI's parser (every command's module)
        "import otel_gemini._configure, otel_gemini.cli; otel_gemini.cli._parser()",
        "import otel_gemini.health, otel_gemini.server, otel_gemini.gateway",
    ],
)
def test_the_core_imports_no_optional_dependency(code: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert _imported_top_level(sys.executable, code, env) & set(OPTIONAL) == set()


_GATEWAY_CONFIG = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from otel_gemini import cli
    from otel_gemini.gateway import GatewaySettings

    try:
        GatewaySettings(max_request_bytes=2**20, max_inflight_bytes=2**20)
    except ValueError as error:
        refused = str(error)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["gateway", *sys.argv[2:]])
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))
    print(json.dumps({"refused": refused, "code": code, "out": out.getvalue(),
                      "err": err.getvalue(), "loaded": loaded}))
    """
)


@pytest.mark.parametrize(
    ("argv", "code", "out", "err"),
    [
        (
            ["--check", "--grpc-port", "0", "--http-port", "off"],
            0,
            "otel-gemini gateway: configuration valid: OTLP/gRPC 127.0.0.1:any free port, "
            "OTLP/HTTP off (token off, TLS off); Langfuse http://127.0.0.1:9; spool {spool}; "
            "cost store none; budgets none\n",
            "",
        ),
        (
            # Without --check too: a bad setting stops the command before the server loads.
            ["--max-request-bytes", "1048576", "--max-inflight-bytes", "1048576"],
            2,
            "",
            "otel-gemini gateway: gateway setting max_inflight_bytes (--max-inflight-bytes, "
            "1048576) must be at least 12 x max_request_bytes (--max-request-bytes, 1048576) "
            "= 12582912, what decoding the largest JSON request takes; raise it, lower "
            "max_request_bytes, or leave it out\n",
        ),
        (
            ["--check", "--grpc-port", "off", "--http-port", "off"],
            2,
            "",
            "otel-gemini gateway: the gateway needs at least one of grpc_port and http_port\n",
        ),
    ],
    ids=["valid", "bad-inflight", "no-port"],
)
def test_gateway_settings_are_checked_without_loading_the_server(
    tmp_path: Path, argv: list[str], code: int, out: str, err: str
) -> None:
    """``GatewaySettings`` and ``otel-gemini gateway --check`` (and a bad option) load no
    grpc, uvicorn or starlette: checking a gateway's configuration needs no ``[gateway]``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGFUSE_", "OTEL_"))
    }
    env.update(
        PYTHONPATH=str(REPO),
        LANGFUSE_PUBLIC_KEY="pk-lf-test",
        LANGFUSE_SECRET_KEY="sk-lf-test",
        LANGFUSE_BASE_URL="http://127.0.0.1:9",
        OTEL_GEMINI_SPOOL_DIR=str(tmp_path / "spool"),
    )
    done = subprocess.run(
        [sys.executable, "-c", _GATEWAY_CONFIG, ",".join(OPTIONAL), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "refused": "gateway setting max_inflight_bytes (--max-inflight-bytes, 1048576) must "
        "be at least 12 x max_request_bytes (--max-request-bytes, 1048576) = 12582912, what "
        "decoding the largest JSON request takes; raise it, lower max_request_bytes, or "
        "leave it out",
        "code": code,
        "out": out.format(spool=tmp_path / "spool"),
        "err": err,
        "loaded": [],
    }
    assert not (tmp_path / "spool").exists()  # checked, nothing created


_APP = textwrap.dedent(
    """
    import json, sys
    from google import genai
    from google.genai import types
    import otel_gemini

    telemetry = otel_gemini.configure()
    client = genai.Client(api_key="key", http_options=types.HttpOptions(base_url=sys.argv[1]))
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="Capital?")
    flushed = telemetry.force_flush(timeout=10)
    telemetry.shutdown()
    messages = {}
    for name in ("otel_gemini.testing.FakeGemini", "otel_gemini.server.observability_app"):
        package, attribute = name.rsplit(".", 1)
        try:
            getattr(__import__(package, fromlist=[attribute]), attribute)
        except ImportError as error:
            messages[name] = str(error)
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
    print(json.dumps({"text": reply.text, "flushed": flushed, "loaded": loaded,
                      "messages": messages}))
    """
)


def _pip_install(python: Path, requirement: str) -> None:
    # The test venv's pip installs into the fresh one (no pip of its own to set up).
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", requirement],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.install
def test_a_fresh_core_install_prices_and_exports_and_the_server_extra_serves(
    tmp_path: Path, fake_gemini: FakeGemini, fake_langfuse: FakeLangfuse
) -> None:
    home = tmp_path / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    _pip_install(python, str(REPO))
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert installed & {"grpcio", "uvicorn", "starlette", "langfuse"} == set()

    fake_gemini.add_text("Lisbon.", usage=USAGE, model=FLASH)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        **fake_langfuse.environment(),
        "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
        "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
    }
    done = subprocess.run(
        [str(python), "-c", _APP, fake_gemini.base_url, ",".join(OPTIONAL)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,  # not the repo: the installed package is what runs
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["text"] == "Lisbon." and result["flushed"] is True
    assert result["loaded"] == []
    assert result["messages"] == {
        "otel_gemini.testing.FakeGemini": "otel_gemini.testing needs 'starlette', "
        "which is not installed: pip install 'otel-gemini[testing]'",
        "otel_gemini.server.observability_app": "otel_gemini.server.observability_app needs "
        "'starlette', which is not installed: pip install 'otel-gemini[server]'",
    }
    (span,) = fake_langfuse.spans
    assert span.attributes[attrs.COST_STATUS] == attrs.COST_STATUS_PRICED
    assert Decimal(str(span.attributes[attrs.GEN_AI_USAGE_COST])) == COST

    # A command that needs an extra says which, in one line, exit status 2.
    cli = home / "bin" / "otel-gemini"
    serve = [str(cli), "serve", "--port", "0", "--db", str(tmp_path / "costs.sqlite3")]
    refused = subprocess.run(serve, capture_output=True, text=True, timeout=60, env=env)
    assert (refused.returncode, refused.stderr) == (
        2,
        "otel-gemini serve: otel-gemini serve needs 'starlette', which is not installed: "
        "pip install 'otel-gemini[server]'\n",
    )

    # Checking a gateway's configuration needs no [gateway] extra; running one says which.
    gateway = [str(cli), "gateway", "--grpc-port", "0", "--http-port", "0"]
    checked = subprocess.run(
        [*gateway, "--check"], capture_output=True, text=True, timeout=60, env=env
    )
    assert (checked.returncode, checked.stderr, checked.stdout) == (
        0,
        "",
        "otel-gemini gateway: configuration valid: OTLP/gRPC 127.0.0.1:any free port, "
        "OTLP/HTTP 127.0.0.1:any free port (token off, TLS off); "
        f"Langfuse {fake_langfuse.base_url}; spool {tmp_path / 'spool'}; "
        f"cost store {tmp_path / 'costs.sqlite3'}; budgets none\n",
    )
    refused = subprocess.run(gateway, capture_output=True, text=True, timeout=60, env=env)
    assert (refused.returncode, refused.stderr) == (
        2,
        "otel-gemini gateway: otel-gemini gateway needs 'grpc', which is not installed: "
        "pip install 'otel-gemini[gateway]'\n",
    )

    # With the server extra, `otel-gemini serve` answers the cost the core install stored.
    _pip_install(python, f"{REPO}[server]")
    server = subprocess.Popen(
        serve,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert server.stderr is not None
        # "otel-gemini serve: http://127.0.0.1:PORT/api/observability/ (...)" on stderr,
        # printed (flushed) once the port is bound: the line is the readiness signal.
        announced = server.stderr.readline()
        base = announced.split()[2]
        assert base.startswith("http://127.0.0.1:"), announced
        answer = httpx.get(f"{base}costs", params={"group_by": "model"}, timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert answer.status_code == 200, answer.text
    groups = answer.json()["groups"]
    assert [(g["model"], Decimal(g["cost"]), g["requests"]) for g in groups] == [(FLASH, COST, 1)]
