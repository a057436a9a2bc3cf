"""Issue 22 (ports): the attacks an outsider on the same host or network could make on the
ports of ``gateway`` and ``serve``, each reproduced and shown refused.

- no token: POST of a victim's spend and GET of everyone's costs → 401 (HTTP) and
  UNAUTHENTICATED (gRPC); with the token → accepted; a rotated token file is honoured;
- TLS with a self-signed CA, and mTLS (a client without a certificate is refused);
- a non-loopback address without a token → exit 2 in one line; ``--allow-unauthenticated``
  → a warning;
- 300 silent and 100 slow-header connections no longer lock everyone out, and are closed
  after the header timeout; stalled bodies count in flight and memory stays bounded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from polling import wait_until
from starlette.testclient import TestClient
from tls_material import Material, make

from otel_gemini import _attributes as attrs
from otel_gemini._listen_security import ListenSecurity, TokenFile
from otel_gemini.aggregate import CostAnswers, CostStore, LocalCostSource
from otel_gemini.cli import main as cli_main
from otel_gemini.export import LangfuseExporter, RetryPolicy
from otel_gemini.gateway import Gateway, GatewaySettings
from otel_gemini.server import observability_app
from otel_gemini.testing import FakeLangfuse

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parent.parent
PROTOBUF = {"content-type": "application/x-protobuf"}
VICTIM = {
    attrs.GEN_AI_OPERATION_NAME: "generate_content",
    attrs.GEN_AI_REQUEST_MODEL: "gemini-2.5-flash",
    attrs.GEN_AI_USAGE_INPUT_TOKENS: 10**9,
    attrs.GEN_AI_USAGE_OUTPUT_TOKENS: 10**9,
    attrs.USER_ID: "victim-user",
}


def _body(count: int = 1) -> bytes:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("attacker")
    for _ in range(count):
        with tracer.start_as_current_span("generate_content", kind=SpanKind.CLIENT) as span:
            span.set_attributes(VICTIM)
    spans: list[ReadableSpan] = list(memory.get_finished_spans())
    return bytes(encode_spans(spans).SerializeToString())


@pytest.fixture
def material(tmp_path: Path) -> Material:
    directory = tmp_path / "tls"
    directory.mkdir()
    return make(directory)


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


def _gateway(langfuse: FakeLangfuse, spool: Path, **settings: Any) -> Gateway:
    exporter = LangfuseExporter(
        spool_dir=spool,
        retry=RetryPolicy(initial_backoff=0.05, max_backoff=0.5),
        **langfuse.exporter_settings(),
    )
    return Gateway(exporter, settings=GatewaySettings(grpc_port=0, http_port=0, **settings))


def _secured(material: Material, *, client_ca: bool = False) -> ListenSecurity:
    return ListenSecurity(
        tokens=TokenFile(material.token_file),
        tls_cert=material.cert,
        tls_key=material.key,
        tls_client_ca=material.ca if client_ca else None,
    )


def _grpc_stub(gateway: Gateway, material: Material, *, with_cert: bool = False) -> Any:
    assert gateway.grpc_port is not None
    credentials = grpc.ssl_channel_credentials(
        root_certificates=material.ca.read_bytes(),
        private_key=material.client_key.read_bytes() if with_cert else None,
        certificate_chain=material.client_cert.read_bytes() if with_cert else None,
    )
    channel = grpc.secure_channel(f"127.0.0.1:{gateway.grpc_port}", credentials)
    return channel, trace_service_pb2_grpc.TraceServiceStub(channel)


# --- authentication and TLS ----------------------------------------------------------------------


def test_gateway_refuses_senders_and_readers_without_the_token(
    langfuse: FakeLangfuse, material: Material, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", security=_secured(material))
    with gateway.start(), httpx.Client(verify=material.client_context(), timeout=10) as client:
        assert gateway.http_endpoint == f"https://127.0.0.1:{gateway.http_port}"
        traces = f"{gateway.http_endpoint}/v1/traces"
        health = f"{gateway.http_endpoint}/api/observability/health"
        # The finding: a victim's 10^9 tokens, priced and forwarded. Now: 401.
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic x"}):
            response = client.post(traces, content=_body(), headers={**PROTOBUF, **headers})
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert client.get(health, headers=headers).status_code == 401
        # Probes still see whether it is alive (and nothing else).
        livez = client.get(f"{gateway.http_endpoint}/api/observability/livez")
        assert (livez.status_code, livez.json()) == (200, {"status": "alive"})

        channel, stub = _grpc_stub(gateway, material)
        with channel:
            with pytest.raises(grpc.RpcError) as raised:
                stub.Export(encode_spans([]), timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.RpcError) as raised:
                stub.Export(encode_spans([]), metadata=[("authorization", "Bearer no")], timeout=10)
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
            document = client.get(health, headers=material.bearer).json()
            assert document["gateway"]["requests"] == 0  # nothing reached the intake

            # With the token: accepted on both ports.
            request = ExportTraceServiceRequest.FromString(_body(2))
            stub.Export(request, metadata=[("authorization", material.bearer["authorization"])])
        response = client.post(traces, content=_body(), headers={**PROTOBUF, **material.bearer})
        assert response.status_code == 200
        assert len(langfuse.wait_for_spans(3)) == 3


def test_a_rotated_token_file_is_honoured_at_once(
    langfuse: FakeLangfuse, material: Material, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", security=_secured(material))
    with gateway.start(), httpx.Client(verify=material.client_context(), timeout=10) as client:
        health = f"{gateway.http_endpoint}/api/observability/health"
        assert client.get(health, headers=material.bearer).status_code == 200
        material.token_file.write_text("# rotated\nnew-token-1\nnew-token-2\n")
        assert client.get(health, headers=material.bearer).status_code == 401
        for token in ("new-token-1", "new-token-2"):
            response = client.get(health, headers={"authorization": f"Bearer {token}"})
            assert response.status_code == 200
        # A botched rotation (empty file) keeps the tokens in force rather than opening up
        # or locking everyone out.
        material.token_file.write_text("")
        response = client.get(health, headers={"authorization": "Bearer new-token-1"})
        assert response.status_code == 200
        assert client.get(health).status_code == 401
        channel, stub = _grpc_stub(gateway, material)
        with channel:
            stub.Export(encode_spans([]), metadata=[("authorization", "Bearer new-token-2")])


def test_mtls_refuses_a_client_without_a_certificate(
    langfuse: FakeLangfuse, material: Material, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", security=_secured(material, client_ca=True))
    with gateway.start():
        health = f"{gateway.http_endpoint}/api/observability/health"
        with (
            httpx.Client(verify=material.client_context(), timeout=10) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get(health, headers=material.bearer)
        with httpx.Client(verify=material.client_context(with_cert=True), timeout=10) as client:
            assert client.get(health, headers=material.bearer).status_code == 200
        channel, stub = _grpc_stub(gateway, material)
        with channel, pytest.raises(grpc.RpcError) as raised:
            stub.Export(
                encode_spans([]),
                metadata=[("authorization", material.bearer["authorization"])],
                timeout=10,
            )
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        channel, stub = _grpc_stub(gateway, material, with_cert=True)
        with channel:
            stub.Export(
                encode_spans([]),
                metadata=[("authorization", material.bearer["authorization"])],
                timeout=10,
            )


def test_observability_app_takes_a_token_file(tmp_path: Path, material: Material) -> None:
    CostStore(tmp_path / "costs.sqlite3").shutdown()
    app = observability_app(
        CostAnswers(LocalCostSource(tmp_path / "costs.sqlite3")), auth=material.token_file
    )
    with TestClient(app) as client:
        costs = "/api/observability/costs?group_by=user"
        assert client.get(costs).status_code == 401
        assert client.get("/api/observability/livez").status_code == 200
        assert client.get(costs, headers=material.bearer).status_code == 200


# --- the commands --------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGFUSE_", "OTEL_", "GEMINI_", "GOOGLE_"))
    }
    env.update(
        PYTHONPATH=str(REPO),
        XDG_STATE_HOME=str(tmp_path / "state"),
        OTEL_GEMINI_SPOOL_DIR=str(tmp_path / "spool"),
        OTEL_GEMINI_COST_DB=str(tmp_path / "costs.sqlite3"),
        **extra,
    )
    return env


def _cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


COMMANDS = {
    "serve": ["serve", "--port", "0"],
    "gateway": ["gateway", "--grpc-port", "0", "--http-port", "0"],
}
LANGFUSE = {
    "LANGFUSE_PUBLIC_KEY": "pk-lf-x",
    "LANGFUSE_SECRET_KEY": "sk-lf-x",
    "LANGFUSE_BASE_URL": "http://127.0.0.1:9",
}


def _bad_options(material: Material, tmp_path: Path) -> list[tuple[list[str], str]]:
    empty = tmp_path / "empty-tokens"
    empty.write_text("# no token yet\n\n")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    return [
        (["--host", "0.0.0.0"], "--host 0.0.0.0: a non-loopback address needs --auth-token-file"),
        (["--auth-token-file", str(tmp_path / "missing")], "--auth-token-file"),
        (["--auth-token-file", str(empty)], "--auth-token-file"),
        (["--tls-cert", str(material.cert)], "--tls-cert needs --tls-key"),
        (["--tls-key", str(material.key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(not_pem), "--tls-key", str(material.key)], "--tls-cert"),
        (["--tls-cert", str(material.cert), "--tls-key", str(material.client_key)], "--tls-key"),
        (["--tls-client-ca", str(material.ca)], "--tls-client-ca needs --tls-cert"),
        (
            [
                *("--tls-cert", str(material.cert), "--tls-key", str(material.key)),
                "--tls-client-ca",
                str(not_pem),
            ],
            "--tls-client-ca",
        ),
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_security_options_are_one_line_exit_2(
    command: str, material: Material, tmp_path: Path
) -> None:
    for options, named in _bad_options(material, tmp_path):
        result = _cli([*COMMANDS[command], *options], _env(tmp_path, **LANGFUSE))
        lines = result.stderr.splitlines()
        assert result.returncode == 2, (options, result.stderr)
        assert len(lines) == 1, (options, result.stderr)
        assert lines[0].startswith(f"otel-gemini {command}: "), lines
        assert named in lines[0], (named, lines[0])
        assert result.stdout == ""


def _start(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "otel_gemini.cli", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.terminate()
    try:
        return process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()


def test_serve_allow_unauthenticated_on_every_interface_warns(tmp_path: Path) -> None:
    process = _start(
        ["serve", "--host", "0.0.0.0", "--port", "0", "--allow-unauthenticated", "--no-export"],
        _env(tmp_path),
    )
    try:
        assert process.stderr is not None
        first = process.stderr.readline()
        banner = process.stderr.readline()
    finally:
        _stop(process)
    assert first.startswith("otel-gemini serve: WARNING: listening on 0.0.0.0 without auth")
    assert banner.startswith("otel-gemini serve: http://0.0.0.0:")


def test_gateway_allow_unauthenticated_on_every_interface_warns(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    argv = [*COMMANDS["gateway"], "--host", "0.0.0.0", "--allow-unauthenticated"]
    process = _start(argv, _env(tmp_path, **langfuse.environment()))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("otel-gemini gateway listening grpc=0.0.0.0:")
    finally:
        _, err = _stop(process)
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert warnings == [
        "otel-gemini gateway: WARNING: listening on 0.0.0.0 without authentication "
        "(--allow-unauthenticated): anyone who can reach it can send spans and read costs; "
        "see docs/security.md"
    ]


def test_serve_with_token_and_tls_hides_everyones_costs(material: Material, tmp_path: Path) -> None:
    CostStore(tmp_path / "costs.sqlite3").shutdown()
    process = _start(
        ["serve", "--port", "0", "--no-export", *material.gateway_args()],
        _env(tmp_path, OTEL_GEMINI_AUTH_TOKEN_FILE=str(material.token_file)),
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert banner.startswith("otel-gemini serve: https://127.0.0.1:"), banner
        base = banner.split()[2].rstrip("/")
        costs = f"{base}/costs?group_by=user"
        with httpx.Client(verify=material.client_context(), timeout=10) as client:
            wait_until(lambda: _answers(client, f"{base}/livez"), 20, "serve to answer")
            refused = client.get(costs)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert client.get(f"{base}/health").status_code == 401
            root = base.removesuffix("/api/observability")
            assert client.get(f"{root}/").status_code == 401  # the page too
            answer = client.get(costs, headers=material.bearer)
            assert answer.status_code == 200, answer.text
    finally:
        _stop(process)


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.TransportError:
        return False


# --- connections ---------------------------------------------------------------------------------


def _closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closed ``sock`` before ``deadline`` (reads until EOF or error)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        except TimeoutError:
            return False


def test_silent_and_slow_header_connections_lock_nobody_out(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    header_timeout = 1.5
    gateway = _gateway(langfuse, tmp_path / "spool", header_timeout=header_timeout)
    silent: list[socket.socket] = []
    slow: list[socket.socket] = []
    stop_dripping = threading.Event()
    with gateway.start():
        address = ("127.0.0.1", gateway.http_port)
        opened = time.monotonic()
        for _ in range(300):
            silent.append(socket.create_connection(address))
        for _ in range(100):
            sock = socket.create_connection(address)
            sock.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
            slow.append(sock)

        def drip() -> None:
            # A header byte every 0.2 s on each slow connection: the deadline is for the
            # whole head, so dripping does not keep a connection open.
            while not stop_dripping.wait(0.2):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.send(b"X")

        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        try:
            started = time.monotonic()
            response = httpx.post(
                f"{gateway.http_endpoint}/v1/traces", content=_body(), headers=PROTOBUF
            )
            answered = time.monotonic() - started
            assert response.status_code == 200
            assert answered <= 2.0, answered
            health = httpx.get(f"{gateway.http_endpoint}/api/observability/health")
            assert health.status_code == 200

            deadline = opened + header_timeout + 5
            assert all(_closed_by_peer(sock, deadline) for sock in silent)
            assert all(_closed_by_peer(sock, deadline) for sock in slow)
        finally:
            stop_dripping.set()
            dripper.join(5)
            for sock in silent + slow:
                sock.close()
    print(f"\nvalid request answered in {answered * 1000:.0f} ms beside 400 idle connections")


def test_stalled_bodies_count_in_flight_and_stay_bounded(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    """60 connections each send 15 MiB of a declared 16 MiB body and stall."""
    http_port = _free_port()
    process = _start(
        ["gateway", "--grpc-port", "off", "--http-port", str(http_port), "--body-timeout", "8"],
        _env(tmp_path, **langfuse.environment()),
    )
    stalled: list[socket.socket] = []
    try:
        assert process.stdout is not None
        assert "listening" in process.stdout.readline()
        health_url = f"http://127.0.0.1:{http_port}/api/observability/health"
        chunk = b"\0" * (15 * 1024 * 1024)
        head = (
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: %d\r\n\r\n" % (16 * 1024 * 1024)
        )
        refused = 0
        for _ in range(60):
            sock = socket.create_connection(("127.0.0.1", http_port))
            stalled.append(sock)
            try:
                sock.sendall(head + chunk)
            except OSError:
                refused += 1  # answered 429 and closed before taking it all
        gateway = psutil.Process(process.pid)
        stats = httpx.get(health_url, timeout=10).json()["gateway"]
        rss = gateway.memory_info().rss
        print(
            f"\n60 stalled 15 MiB bodies: gateway RSS {rss / 2**20:.0f} MiB, in flight "
            f"{stats['inflight_bytes'] / 2**20:.1f} MiB, {stats['requests_busy']} answered 429"
        )
        assert stats["inflight_bytes"] >= 45 * 2**20  # counted as they arrived
        assert stats["inflight_bytes"] <= stats["inflight_capacity_bytes"] + 2**20
        # Each stalled body takes what it would decode into (6 x 15 MiB) from the default
        # budget (12 x 16 MiB + 16 MiB): two fit, the rest are refused at once.
        capacity = stats["inflight_capacity_bytes"]
        assert stats["requests_busy"] >= 60 - capacity // (6 * 15 * 2**20) - 1
        assert rss <= 300 * 10**6  # the bound
        # The body timeout closes the stalled ones and gives their bytes back.
        wait_until(
            lambda: httpx.get(health_url, timeout=10).json()["gateway"]["inflight_bytes"] == 0,
            30,
            "the stalled bodies to time out",
        )
    finally:
        for sock in stalled:
            sock.close()
        _stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_otel_gemini_health_reads_a_secured_gateway(
    langfuse: FakeLangfuse,
    material: Material,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", security=_secured(material))
    with gateway.start():
        assert gateway.http_endpoint is not None
        url = ["health", "--url", gateway.http_endpoint, "--tls-ca", str(material.ca)]
        assert cli_main(url) == 3
        assert "wants a token (HTTP 401)" in capsys.readouterr().err
        code = cli_main([*url, "--auth-token-file", str(material.token_file), "--json"])
        assert code in (0, 1)  # healthy, or degraded while its first probe runs
        assert "inflight_bytes" in capsys.readouterr().out


def test_a_full_server_answers_503_with_retry_after(langfuse: FakeLangfuse, tmp_path: Path) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", http_limit_concurrency=1, retry_after=2)
    with gateway.start():
        address = ("127.0.0.1", gateway.http_port)
        traces = f"{gateway.http_endpoint}/v1/traces"
        # One request in progress (its body is on its way): the server is full.
        busy = socket.create_connection(address)
        busy.sendall(
            b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
            b"Content-Length: 1000\r\n\r\n0123456789"
        )
        answers: list[httpx.Response] = []

        def refused() -> bool:
            answers.append(httpx.post(traces, content=_body(), headers=PROTOBUF))
            return answers[-1].status_code == 503

        wait_until(refused, 10, "a 503 while the server is full")
        assert answers[-1].headers["retry-after"] == "2"
        busy.close()
        wait_until(
            lambda: httpx.post(traces, content=_body(), headers=PROTOBUF).status_code == 200,
            10,
            "room again",
        )


def test_past_the_connection_cap_the_longest_idle_connection_makes_room(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", max_connections=20, header_timeout=60)
    idle: list[socket.socket] = []
    with gateway.start():
        try:
            for _ in range(40):
                idle.append(socket.create_connection(("127.0.0.1", gateway.http_port)))
            response = httpx.post(
                f"{gateway.http_endpoint}/v1/traces", content=_body(), headers=PROTOBUF
            )
            assert response.status_code == 200
            deadline = time.monotonic() + 5
            closed = sum(_closed_by_peer(sock, deadline) for sock in idle[:21])
            assert closed == 21  # the oldest ones, long before the header timeout
        finally:
            for sock in idle:
                sock.close()


def test_a_silent_grpc_connection_is_closed_after_the_handshake_timeout(
    langfuse: FakeLangfuse, tmp_path: Path
) -> None:
    gateway = _gateway(langfuse, tmp_path / "spool", header_timeout=1.0)
    with gateway.start():
        assert gateway.grpc_port is not None
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", gateway.grpc_port)) as sock:
            assert _closed_by_peer(sock, started + 6)
        print(f"\nsilent gRPC connection closed after {time.monotonic() - started:.1f} s")


def test_silent_connections_to_tls_ports_are_closed_after_the_header_timeout(
    langfuse: FakeLangfuse, material: Material, tmp_path: Path
) -> None:
    security = _secured(material)
    gateway = _gateway(langfuse, tmp_path / "spool", header_timeout=1.0, security=security)
    with gateway.start():
        started = time.monotonic()
        for port in (gateway.http_port, gateway.grpc_port):
            assert port is not None
            # No TLS handshake at all (asyncio alone would wait 60 s) ...
            with socket.create_connection(("127.0.0.1", port)) as sock:
                assert _closed_by_peer(sock, started + 6), port
        # ... and a handshake, then silence.
        raw = socket.create_connection(("127.0.0.1", gateway.http_port))
        with material.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert _closed_by_peer(sock, time.monotonic() + 6)
