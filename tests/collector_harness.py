"""Real processes for the Collector pipeline tests: the OpenTelemetry Collector built by
collector-config/build-collector.sh, `otel-gemini gateway` subprocesses, and the Node.js app.

Everything listens on 127.0.0.1. Readiness is awaited by polling with a deadline (health
endpoints, a line on stdout), never by sleeping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
from polling import wait_until
from tls_material import Material

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "collector-config"
BUILD_SCRIPT = CONFIG_DIR / "build-collector.sh"
NODE_APP = REPO / "tests" / "node_app"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_collector() -> tuple[Path | None, str]:
    """(binary, "") or (None, why it could not be built)."""
    if shutil.which("go") is None:
        return None, "Go is not installed: cannot build the OpenTelemetry Collector"
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=1500
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        return None, f"collector-config/build-collector.sh failed:\n{tail}"
    return Path(result.stdout.strip().splitlines()[-1]), ""


def _drain(stream: IO[str] | None, sink: list[str]) -> None:
    if stream is None:
        return
    for line in stream:
        sink.append(line)


class Process:
    """A subprocess whose output is collected on a thread (shown when a test fails)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        import threading

        self.name = name
        self.output: list[str] = []
        self.popen = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=str(REPO),
        )
        self._reader = threading.Thread(
            target=_drain, args=(self.popen.stdout, self.output), daemon=True
        )
        self._reader.start()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return "".join(self.output[-60:])

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything (a crash)."""
        if self.alive():
            self.popen.kill()
        self.popen.wait(10)
        self._close_output()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._close_output()
        return self.popen.returncode

    def _close_output(self) -> None:
        self._reader.join(5)  # the pipe hits end-of-file once the process is gone
        if self.popen.stdout is not None:
            self.popen.stdout.close()

    def wait_for_output(self, text: str, timeout: float) -> str:
        found: list[str] = []

        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            found.extend(line for line in list(self.output) if text in line)
            return bool(found)

        wait_until(check, timeout, f"{self.name} to print {text!r}")
        return found[0]


class Collector(Process):
    """The built Collector running ``configs`` (merged) with its ports from ``env``."""

    # A port picked free may be taken by another test process before the Collector binds it:
    # a start that fails so is tried again on fresh ports.
    _START_ATTEMPTS = 3

    def __init__(self, binary: Path, configs: Sequence[str], env: Mapping[str, str]) -> None:
        argv = [str(binary)]
        for config in configs:
            argv += ["--config", str(CONFIG_DIR / config)]
        for attempt in range(self._START_ATTEMPTS):
            self.health_port = free_port()
            self.grpc_port = free_port()
            self.http_port = free_port()
            ports = {
                "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{self.health_port}",
                "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{self.grpc_port}",
                "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{self.http_port}",
                "OTELCOL_METRICS_PORT": str(free_port()),
                "OTELCOL_LOG_LEVEL": "warn",
            }
            super().__init__("collector", argv, {**ports, **env})
            try:
                self.wait_healthy(30)
                return
            except RuntimeError:
                taken = "address already in use" in self.log()
                self.stop()
                if not taken or attempt == self._START_ATTEMPTS - 1:
                    raise

    @property
    def otlp_http_traces(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    def wait_healthy(self, timeout: float) -> None:
        def check() -> bool:
            if not self.alive():
                raise RuntimeError(f"the Collector exited:\n{self.log()}")
            try:
                response = httpx.get(f"http://127.0.0.1:{self.health_port}/", timeout=1)
            except httpx.TransportError:
                return False
            return response.status_code == 200

        wait_until(check, timeout, "the Collector's health_check")


class GatewayProcess(Process):
    """`otel-gemini gateway` on fixed ports (so a restart takes the same ones); with
    ``secured``, behind its bearer token and TLS certificate."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        grpc_port: int | None = None,
        http_port: int | None = None,
        extra_args: Sequence[str] = (),
        secured: Material | None = None,
    ) -> None:
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.secured = secured
        if secured is not None:
            extra_args = [*extra_args, *secured.gateway_args()]
        argv = [
            sys.executable,
            "-m",
            "otel_gemini.cli",
            "gateway",
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
            *extra_args,
        ]
        super().__init__("gateway", argv, env)
        self.wait_for_output("otel-gemini gateway listening", 30)

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def health(self) -> dict[str, Any]:
        if self.secured is None:
            url, headers, verify = f"http://127.0.0.1:{self.http_port}", {}, True
        else:
            url, headers = f"https://127.0.0.1:{self.http_port}", self.secured.bearer
            verify = self.secured.client_context()
        response = httpx.get(
            f"{url}/api/observability/health", headers=headers, verify=verify, timeout=5
        )
        document: dict[str, Any] = response.json()
        return document


def run_node_app(traces_endpoint: str, traces: int) -> dict[str, Any]:
    """Runs tests/node_app/app.js (OpenTelemetry JS SDK) against ``traces_endpoint``."""
    import json

    result = subprocess.run(
        ["node", str(NODE_APP / "app.js"), str(traces)],
        env={**os.environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"node app failed:\n{result.stderr[-2000:]}")
    document: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return document


def node_app_ready() -> str:
    """ "" when the Node.js app can run, else why not."""
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (NODE_APP / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        return "tests/node_app has no node_modules: run `npm ci` in tests/node_app (make collector)"
    return ""
