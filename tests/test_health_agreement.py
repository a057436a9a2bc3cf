"""Every place that answers "is telemetry healthy?" gives the same answer for the same state:
``Telemetry.health()``, its ``asgi_app()`` route, ``otel-gemini serve``'s app and
``otel-gemini health --spool-dir`` (from the owner's status.json)."""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from polling import wait_until
from starlette.applications import Starlette
from starlette.testclient import TestClient
from telemetry_maker import telemetry_maker

from otel_gemini._configure import Telemetry
from otel_gemini.cli import main as cli_main
from otel_gemini.export import RetryPolicy
from otel_gemini.health import HEALTH_ENDPOINT
from otel_gemini.server import _command as serve_command
from otel_gemini.testing import FakeLangfuse

LANGFUSE_VARIABLES = (
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "LANGFUSE_BASE_URL",
    "LANGFUSE_HOST",
)
Answer = tuple[str, tuple[str, ...]]


class Kill(BaseException):
    """Ends a loop's thread."""


def answer(status: str, reasons: list[str] | tuple[str, ...]) -> Answer:
    # Counts and seconds move between two reads (retries go on); the words must not.
    return status, tuple(re.sub(r"\d+(\.\d+)?", "N", reason) for reason in reasons)


def route_answer(app: Starlette) -> Answer:
    with TestClient(app) as client:
        response = client.get(HEALTH_ENDPOINT)
    body = response.json()
    assert response.status_code == (503 if body["status"] == "unhealthy" else 200)
    return answer(body["status"], body["reasons"])


@pytest.fixture
def make_telemetry(tmp_path: Path) -> Iterator[Callable[..., Telemetry]]:
    yield from telemetry_maker(tmp_path, instrument=False)


def produce(telemetry: Telemetry, count: int) -> None:
    tracer = telemetry.tracer_provider.get_tracer("agreement-test")
    for _ in range(count):
        with tracer.start_as_current_span("work"):
            pass


class Views:
    """The health answers of one configured process, read every way there is."""

    def __init__(
        self, telemetry: Telemetry, spool_root: Path | None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.telemetry = telemetry
        self.app = telemetry.asgi_app()
        self.spool_root = spool_root
        self.capsys = capsys

    def read(self) -> dict[str, Answer]:
        report = self.telemetry.health()
        views = {
            "Telemetry.health()": answer(report.status.value, report.reasons),
            "asgi_app()": route_answer(self.app),
        }
        if self.spool_root is not None:
            self.capsys.readouterr()
            cli_main(["health", "--spool-dir", str(self.spool_root), "--json"])
            (slot,) = json.loads(self.capsys.readouterr().out)["slots"]
            views["otel-gemini health --spool-dir"] = answer(
                slot["report"]["status"], slot["report"]["reasons"]
            )
        return views

    def agree(self, status: str, *, containing: str = "") -> Answer:
        """Waits (5 s at most) until every view gives the same answer, with ``status`` and
        a reason containing ``containing``; returns it."""
        seen: list[dict[str, Answer]] = []

        def agreed() -> bool:
            views = self.read()
            seen[:] = [views]
            answers = set(views.values())
            if len(answers) != 1:
                return False
            ((said, reasons),) = answers
            return said == status and any(containing in reason for reason in reasons or ("",))

        try:
            wait_until(agreed, 5, f"every view to say {status}")
        except TimeoutError:
            pytest.fail(f"the views disagree or are not {status}: {seen}")
        return next(iter(seen[0].values()))


def test_with_langfuse_export_off_every_view_agrees(
    make_telemetry: Callable[..., Telemetry],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in LANGFUSE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    telemetry = make_telemetry(langfuse=False, health_probe=False)
    Views(telemetry, None, capsys).agree("healthy", containing="Langfuse export is off")
    # otel-gemini serve without Langfuse runs no pipeline at all (it only reads the store):
    # nothing to judge, so "unknown" (503), as before.
    args = argparse.Namespace(db=str(tmp_path / "costs.sqlite3"), source=None, no_export=False)
    app, answers, exporter = serve_command.build(args)
    try:
        assert exporter is None
        with TestClient(app) as client:
            response = client.get(HEALTH_ENDPOINT)
        assert (response.status_code, response.json()["status"]) == (503, "unknown")
    finally:
        answers.close()


def test_every_view_agrees_up_down_refused_and_with_a_loop_stopped(
    make_telemetry: Callable[..., Telemetry],
    fake_langfuse: FakeLangfuse,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    telemetry = make_telemetry(
        **fake_langfuse.exporter_settings(),
        spool_dir=tmp_path / "spool",
        retry=RetryPolicy(initial_backoff=0.02, max_backoff=0.2, pause_interval=60),
        health_probe=True,
    )
    exporter = telemetry.exporter
    assert exporter is not None
    views = Views(telemetry, tmp_path / "spool", capsys)

    # Up.
    produce(telemetry, 3)
    assert telemetry.force_flush(10)
    assert views.agree("healthy") == ("healthy", ())
    # otel-gemini serve (its own exporter on another spool) answers the same for Langfuse up.
    for name, value in fake_langfuse.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_GEMINI_SPOOL_DIR", str(tmp_path / "serve-spool"))
    args = argparse.Namespace(db=str(tmp_path / "costs.sqlite3"), source=None, no_export=False)
    app, answers, serve_exporter = serve_command.build(args)
    try:
        assert serve_exporter is not None
        wait_until(lambda: route_answer(app) == ("healthy", ()), 5, "serve to say healthy")
    finally:
        answers.close()
        if serve_exporter is not None:
            serve_exporter.shutdown(1000)

    # A loop stopped for good (its thread ends each time it is restarted).
    sender = exporter._pipeline._sender
    assert sender is not None
    real_turn = sender._await_turn
    armed = threading.Event()
    armed.set()

    def killed_turn() -> bool:
        if armed.is_set():
            raise Kill()
        return real_turn()

    monkeypatch.setattr(sender, "_await_turn", killed_turn)
    produce(telemetry, 2)  # the sender's next turn ends its thread
    views.agree("unhealthy", containing="background loop sender stopped")
    armed.clear()
    wait_until(lambda: exporter.stats().sent == 5, 10, "the restarted sender to deliver")
    views.agree("healthy")

    # Down.
    fake_langfuse.refuse_connections()
    produce(telemetry, 2)
    wait_until(lambda: exporter.stats().consecutive_failures >= 2, 10, "failed attempts")
    views.agree("degraded", containing="consecutive failed send attempts")
    telemetry._health.refresh()  # a probe now: status.json carries its finding too
    views.agree("degraded", containing="Langfuse is unreachable")

    # Credentials refused (ingestion suspended: the probe is refused too).
    fake_langfuse.up()
    wait_until(lambda: exporter.stats().sent == 7, 10, "the backlog to be delivered")
    fake_langfuse.suspend_ingestion()
    produce(telemetry, 2)
    wait_until(lambda: exporter.stats().paused == "auth", 10, "sending to pause")
    views.agree("unhealthy", containing="Langfuse refused the credentials")
