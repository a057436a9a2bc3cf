"""Health: the rules, the reporter over a real exporter and fake Langfuse, the endpoint, the CLI."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest
from opentelemetry.sdk.trace import TracerProvider
from polling import wait_until
from starlette.testclient import TestClient

from otel_gemini.cli import main as cli_main
from otel_gemini.export import ExportStats, LangfuseExporter, RetryPolicy
from otel_gemini.health import (
    HealthReporter,
    HealthStatus,
    LangfuseProbe,
    ProbeResult,
    health_app,
)
from otel_gemini.health._assess import assess
from otel_gemini.testing import FakeLangfuse
from otel_gemini.testing._uvicorn_thread import UvicornThread

NOW = 1_800_000_000.0
FLOWING = ExportStats(
    accepted=10, sent=10, last_success_at=NOW - 1, spool_capacity_bytes=1000, attempts=3
)


def status_of(stats: ExportStats, probe: ProbeResult | None = None) -> HealthStatus:
    return assess(stats, probe, NOW)[0]


def test_rules_degraded_within_two_failures_or_30_s_and_healthy_after_one_success() -> None:
    one_failure = replace(FLOWING, consecutive_failures=1, failing_since=NOW - 5)
    assert status_of(FLOWING) is HealthStatus.HEALTHY
    assert status_of(one_failure) is HealthStatus.HEALTHY
    assert status_of(replace(one_failure, consecutive_failures=2)) is HealthStatus.DEGRADED
    assert status_of(replace(one_failure, failing_since=NOW - 30)) is HealthStatus.DEGRADED
    assert status_of(replace(FLOWING, in_flight_since=NOW - 31)) is HealthStatus.DEGRADED
    _, reasons = assess(
        replace(one_failure, consecutive_failures=3, last_error="HTTP 503"), None, NOW
    )
    assert reasons == ["3 consecutive failed send attempts (last: HTTP 503)"]


def test_rules_for_lost_spans_credentials_and_the_spool() -> None:
    auth = replace(FLOWING, paused="auth", last_error="HTTP 401 Unauthorized")
    assert status_of(auth) is HealthStatus.UNHEALTHY
    dropping = replace(FLOWING, dropped=MappingProxyType({"spool_full": 4}), last_drop_at=NOW - 10)
    status, reasons = assess(dropping, None, NOW)
    assert (status, reasons) == (
        HealthStatus.UNHEALTHY,
        ["spans are being dropped (spool_full 4)"],
    )
    assert status_of(replace(dropping, last_drop_at=NOW - 61)) is HealthStatus.HEALTHY
    damaged_at_start = replace(FLOWING, dropped=MappingProxyType({"corrupt": 3}))
    assert status_of(damaged_at_start) is HealthStatus.HEALTHY
    assert status_of(replace(FLOWING, spool_error="disk full")) is HealthStatus.UNHEALTHY
    assert status_of(replace(FLOWING, queued_disk_bytes=800)) is HealthStatus.DEGRADED
    assert status_of(replace(FLOWING, last_dead_letter_at=NOW - 60)) is HealthStatus.DEGRADED
    assert status_of(replace(FLOWING, shut_down=True)) is HealthStatus.UNHEALTHY


def test_rules_for_damage_found_in_the_spool_while_running() -> None:
    damaged = replace(FLOWING, dropped=MappingProxyType({"corrupt": 3}), last_corrupt_at=NOW - 599)
    status, reasons = assess(damaged, None, NOW)
    assert status is HealthStatus.DEGRADED
    assert reasons == [
        "the spool was found damaged 599 s ago; 3 span(s) lost to corruption (corrupt) so far"
    ]
    assert status_of(replace(damaged, last_corrupt_at=NOW - 601)) is HealthStatus.HEALTHY
    assert ExportStats.from_dict(damaged.to_dict()).last_corrupt_at == NOW - 599


def test_a_probe_counts_only_when_newer_than_the_last_delivery() -> None:
    down = ProbeResult(NOW - 0.5, reachable=False, error="ConnectError")
    assert status_of(FLOWING, down) is HealthStatus.DEGRADED
    assert status_of(FLOWING, replace(down, checked_at=NOW - 2)) is HealthStatus.HEALTHY
    bad_keys = ProbeResult(NOW - 0.5, reachable=True, credentials_valid=False)
    assert status_of(FLOWING, bad_keys) is HealthStatus.UNHEALTHY


@pytest.fixture
def exporter(tmp_path: Path, fake_langfuse: FakeLangfuse) -> Iterator[LangfuseExporter]:
    exporter = LangfuseExporter(
        **fake_langfuse.exporter_settings(),
        spool_dir=tmp_path / "spool",
        retry=RetryPolicy(initial_backoff=0.01, max_backoff=0.05, pause_interval=60),
        environ={},
    )
    yield exporter
    exporter.shutdown(timeout_millis=500)


def produce(exporter: LangfuseExporter, count: int) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(exporter.span_processor())
    for _ in range(count):
        with provider.get_tracer("health-test").start_as_current_span("s"):
            pass


def test_the_reporter_follows_an_outage_and_the_recovery(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter
) -> None:
    reporter = HealthReporter(exporter)
    report = reporter.refresh()
    assert report.status is HealthStatus.HEALTHY
    assert report.langfuse is not None
    assert (report.langfuse.reachable, report.langfuse.credentials_valid) == (True, True)
    fake_langfuse.respond_with(503)
    produce(exporter, 5)
    wait_until(lambda: exporter.stats().consecutive_failures >= 2)
    report = reporter.refresh()
    assert report.status is HealthStatus.DEGRADED
    assert report.reasons[0].endswith("(last: HTTP 503 Service Unavailable)")
    body = report.to_dict()
    assert body["queue"] == {
        "spans": 5,
        "bytes": body["queue"]["bytes"],
        "capacity_bytes": 128 * 1024 * 1024,
    }  # type: ignore[index]
    assert body["last_error"]["message"] == "HTTP 503 Service Unavailable"  # type: ignore[index]
    fake_langfuse.up()
    # force_flush() is False if the attempt in flight when Langfuse came back got its 503.
    wait_until(lambda: exporter.stats().sent == 5, what="the backlog to be delivered")
    report = reporter.refresh()
    assert (report.status, report.reasons) == (HealthStatus.HEALTHY, ())
    assert report.to_dict()["counts"] == {
        "accepted": 5,
        "sent": 5,
        "send_failed": report.stats.send_failed,
        "dropped": 0,
        "dead_lettered": 0,
    }


def test_the_endpoint_answers_503_when_credentials_are_refused(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter
) -> None:
    fake_langfuse.suspend_ingestion()
    produce(exporter, 3)
    assert not exporter.force_flush()
    reporter = HealthReporter(exporter, probe=False)
    with TestClient(health_app(reporter)) as client:
        response = client.get("/api/observability/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["reasons"][0].startswith("Langfuse refused the credentials (HTTP 403 Forbidden)")
    assert fake_langfuse.secret_key not in response.text


def test_the_probe_reports_unreachable_and_rejected_keys(fake_langfuse: FakeLangfuse) -> None:
    wrong = LangfuseProbe(fake_langfuse.base_url, fake_langfuse.public_key, "sk-lf-wrong").check()
    assert (wrong.reachable, wrong.credentials_valid) == (True, False)
    fake_langfuse.refuse_connections()
    gone = LangfuseProbe(fake_langfuse.base_url, "pk-lf-a", "sk-lf-b", timeout=1).check()
    assert gone.reachable is False and gone.error is not None and "ConnectError" in gone.error


def test_the_cli_reads_a_running_server(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    server = UvicornThread(health_app(HealthReporter(exporter, probe=False)), name="health")
    server.start()
    try:
        assert cli_main(["health", "--url", f"http://127.0.0.1:{server.port}"]) == 0
        assert "status: healthy" in capsys.readouterr().out
        fake_langfuse.suspend_ingestion()
        produce(exporter, 2)
        assert not exporter.force_flush()
        assert cli_main(["health", "--url", f"http://127.0.0.1:{server.port}"]) == 2
        assert "status: unhealthy" in capsys.readouterr().out
    finally:
        server.stop()


def test_the_cli_reads_a_spool_directory(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    root = exporter.spool_root
    fake_langfuse.respond_with(500)
    produce(exporter, 4)
    wait_until(lambda: exporter.stats().consecutive_failures >= 2)
    status_file = root / "slot-0" / "status.json"

    def failures_on_file() -> int:
        return int(json.loads(status_file.read_text())["consecutive_failures"])

    wait_until(lambda: status_file.exists() and failures_on_file() >= 2)  # written <= 1/s
    assert cli_main(["health", "--spool-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "status: degraded" in out and "on disk 4 spans" in out
    exporter.shutdown(timeout_millis=200)  # gone, with its backlog left behind
    assert cli_main(["health", "--spool-dir", str(root)]) == 1
    assert "4 span(s) wait in" in capsys.readouterr().out
    assert cli_main(["health", "--spool-dir", str(root / "nothing-here")]) == 3


def test_the_cli_calls_an_owner_whose_status_is_over_300_s_old_degraded_at_best(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    root = exporter.spool_root
    produce(exporter, 2)
    wait_until(lambda: exporter.stats().sent == 2)
    status_file = root / "slot-0" / "status.json"

    def sent_on_file() -> int:
        return int(json.loads(status_file.read_text())["sent"])

    wait_until(lambda: status_file.exists() and sent_on_file() == 2)
    assert cli_main(["health", "--spool-dir", str(root)]) == 0
    capsys.readouterr()
    # The owner's last word was healthy, but it has not said anything for 400 s: stuck.
    frozen = root.parent / "frozen"
    (frozen / "slot-0").mkdir(parents=True, mode=0o700)
    document = json.loads(status_file.read_text())
    document["written_at"] = time.time() - 400
    (frozen / "slot-0" / "status.json").write_text(json.dumps(document))
    with open(frozen / "slot-0" / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live owner that stopped writing
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        assert cli_main(["health", "--spool-dir", str(frozen)]) == 1
    out = capsys.readouterr().out
    assert "status: degraded" in out and "s old (stuck?)" in out


def test_rules_langfuse_not_answering_for_a_request_timeout_is_degraded() -> None:
    # The first attempt timed out at 10 s; its retry is in flight: no answer for 11 s.
    retrying = replace(FLOWING, consecutive_failures=1, in_flight_since=NOW - 0.5)
    status, reasons = assess(retrying, None, NOW, request_timeout=10, unanswered_since=NOW - 11)
    assert (status, reasons) == (HealthStatus.DEGRADED, ["Langfuse has not answered for 11 s"])
    assert assess(retrying, None, NOW, request_timeout=10, unanswered_since=NOW - 9)[0] is (
        HealthStatus.HEALTHY
    )


def test_rules_a_probe_newer_than_a_401_pause_outranks_it() -> None:
    paused = replace(FLOWING, paused="auth", last_error="HTTP 401", last_error_at=NOW - 10)
    keys_work = ProbeResult(NOW - 1, reachable=True, credentials_valid=True)
    status, reasons = assess(paused, keys_work, NOW)
    assert status is HealthStatus.DEGRADED
    assert reasons == [
        "Langfuse accepts the credentials again (GET /api/public/projects); sending resumes"
    ]
    assert status_of(paused, replace(keys_work, checked_at=NOW - 11)) is HealthStatus.UNHEALTHY


@pytest.mark.slow
def test_a_hanging_langfuse_leaves_healthy_within_15_s_and_everything_arrives_after(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exporter.request_timeout == 10.0  # the default
    reporter = HealthReporter(exporter, probe=False)
    produce(exporter, 3)
    assert exporter.force_flush()
    fake_langfuse.hang()
    hang_started = time.monotonic()
    produce(exporter, 4)
    wait_until(lambda: reporter.report().status is not HealthStatus.HEALTHY, 15, "not healthy")
    seconds = time.monotonic() - hang_started
    assert any(
        reason.startswith("Langfuse has not answered for") for reason in reporter.report().reasons
    )
    fake_langfuse.up()
    wait_until(lambda: exporter.stats().sent == 7, 10, "the spans to be delivered")
    assert fake_langfuse.span_count == len(fake_langfuse.span_keys()) == 7
    wait_until(lambda: reporter.report().status is HealthStatus.HEALTHY, 5, "healthy again")
    with capsys.disabled():
        print(f"\n[hang] left healthy {seconds:.1f} s after the hang started")


def test_after_a_401_a_probe_accepting_the_keys_resumes_sending_at_once(
    fake_langfuse: FakeLangfuse, exporter: LangfuseExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    # pause_interval is 60 s: only the probe can resume sending within this test.
    reporter = HealthReporter(exporter)
    fake_langfuse.respond_with(401)
    produce(exporter, 5)
    wait_until(lambda: exporter.stats().paused == "auth", 10, "sending to pause")
    # A probe during the outage (the projects endpoint still takes the keys) wakes the
    # sender, which is refused again: the pause stands, newer than that probe.
    probed = reporter.refresh().langfuse
    assert probed is not None and probed.credentials_valid
    wait_until(
        lambda: (exporter.stats().last_error_at or 0) > probed.checked_at, 5, "a refusal after it"
    )
    assert reporter.report().status is HealthStatus.UNHEALTHY
    fake_langfuse.up()  # the keys work again
    fixed = time.monotonic()
    while exporter.stats().sent < 5:  # a monitor polling health
        report = reporter.report()
        if report.langfuse is not None and report.langfuse.checked_at > (
            report.stats.last_error_at or 0
        ):
            assert not any("refused the credentials" in reason for reason in report.reasons)
        assert time.monotonic() - fixed < 30, "sending did not resume within 30 s"
        time.sleep(0.05)  # the monitor's polling interval
    seconds = time.monotonic() - fixed
    assert fake_langfuse.span_count == 5
    wait_until(lambda: reporter.report().status is HealthStatus.HEALTHY, 5, "healthy again")
    with capsys.disabled():
        print(f"\n[401 fixed] sending resumed {seconds:.1f} s after the keys worked again")


def test_a_status_prints_as_its_value() -> None:
    """``print(telemetry.health().status)`` in the README shows ``healthy``."""
    from otel_gemini.health import HealthStatus

    assert str(HealthStatus.HEALTHY) == "healthy"
    assert f"{HealthStatus.DEGRADED}" == "degraded"
    assert HealthStatus("unhealthy") is HealthStatus.UNHEALTHY
