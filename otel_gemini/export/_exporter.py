"""``LangfuseExporter``: the public face of the durable export pipeline."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_gemini import _background
from otel_gemini._langfuse_settings import warn_if_cleartext
from otel_gemini.export._accounting import ExportStats
from otel_gemini.export._pipeline import HealthInputs, Pipeline
from otel_gemini.export._processor import SpoolingSpanProcessor
from otel_gemini.export._self_metrics import register_self_metrics
from otel_gemini.export._settings import (
    ENV_SPOOL_DIR,
    ExporterOptions,
    ExporterSettings,
    LangfuseConfigError,
    resolve_settings,
)
from otel_gemini.export._slots import SpoolBusyError, check_slots

if TYPE_CHECKING:
    from typing_extensions import Unpack

_logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MILLIS = 5000


class LangfuseExporter(SpanExporter):
    """Exports spans to Langfuse over OTLP/HTTP through a durable on-disk spool.

    Spans are handed off in memory (never blocking on disk or network), written to a
    spool in ``OTEL_GEMINI_SPOOL_DIR`` within about ``persist_interval``, and sent from
    there by a background thread that retries until Langfuse accepts them. Register
    :meth:`span_processor` with your ``TracerProvider``, or use the exporter under your own
    ``BatchSpanProcessor`` (``export()`` is the same in-memory hand-off).

    Settings come from keyword arguments, else the environment (``LANGFUSE_BASE_URL`` or
    ``LANGFUSE_HOST``, ``LANGFUSE_PUBLIC_KEY``, ``LANGFUSE_SECRET_KEY``,
    ``OTEL_GEMINI_SPOOL_DIR``, ``OTEL_GEMINI_SPOOL_MAX_BYTES``), and are validated here:
    :class:`LangfuseConfigError` names a missing or malformed setting, never a key's value.
    :class:`SpoolBusyError` means every slot of the spool directory is owned by another
    running exporter.

    Args:
        base_url: Langfuse base URL (default ``https://cloud.langfuse.com``).
        public_key: Langfuse public key (``pk-lf-...``).
        secret_key: Langfuse secret key (``sk-lf-...``).
        spool_dir: The spool root; this process takes a ``slot-N`` directory in it.
        spool_max_bytes: Byte cap of this process's spool (int, or ``"128MiB"``); when
            full, the oldest spans are dropped and counted (reason ``spool_full``).
        memory_max_bytes: Cap of the in-memory hand-off (estimated bytes); beyond it spans
            are dropped and counted (reason ``queue_full``).
        request_timeout: Seconds per HTTP request.
        retry: Backoff and pause timings.
        batch_max_spans: Spans per request, at most.
        batch_max_bytes: Uncompressed bytes per request, about (a single larger span is
            sent alone).
        spool_slots: How many processes may share ``spool_dir`` (one slot each).
        persist_interval: Seconds a handed-off span may wait in memory (at most 0.5: a
            span that ended a second before a crash is on disk).
        fsync: ``fsync`` each spool write (survives power loss, not only process crashes).
        gzip_level: Request compression level (1: fast, about 17x on GenAI spans).
        meter_provider: For the self-metrics (default: the global one).
        environ: Environment to read instead of ``os.environ``.
    """

    def __init__(
        self,
        *,
        meter_provider: MeterProvider | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Unpack[ExporterOptions],
    ) -> None:
        # The options and their defaults have one home: export/_settings.py.
        self._settings: ExporterSettings = resolve_settings(environ=environ, **options)
        warn_if_cleartext(self._settings.base_url)
        try:
            self._pipeline = Pipeline.start(self._settings)
        except SpoolBusyError:
            raise
        except OSError as error:
            raise spool_error(self._settings, error) from error
        self._status_extras: Callable[[], dict[str, object]] | None = None
        self._processor = SpoolingSpanProcessor(self)
        reference = weakref.ref(self)

        def after_fork_in_child() -> None:
            exporter = reference()
            if exporter is not None:
                exporter._after_fork_in_child()

        os.register_at_fork(after_in_child=after_fork_in_child)
        # Whatever this process holds at its normal end is written and sent (within a
        # bounded time), also in multiprocessing workers, which skip atexit.
        _background.at_exit(self._at_exit)
        register_self_metrics(self, meter_provider)

    # --- handing off spans ---

    def span_processor(self) -> SpoolingSpanProcessor:
        """The processor to register: ``provider.add_span_processor(exporter.span_processor())``."""
        return self._processor

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Hands ``spans`` off in memory (for use under a ``BatchSpanProcessor``)."""
        taken = sum(1 for span in spans if self._pipeline.offer(span))
        if spans and not taken and self._pipeline.stats().shut_down:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _offer(self, span: ReadableSpan) -> None:
        self._pipeline.offer(span)

    # --- lifecycle ---

    def force_flush(self, timeout_millis: int = DEFAULT_TIMEOUT_MILLIS) -> bool:
        """Writes every span handed off so far to the spool and tries to send the spool.

        True when all of it reached Langfuse (or was resolved) within ``timeout_millis``;
        False when the deadline passed, an attempt failed or sending is paused: the spans
        are then on disk (if the deadline allowed) and sent later. Never waits longer.
        """
        return self._pipeline.force_flush(max(0.0, timeout_millis / 1000))

    def wait_persisted(self, timeout_millis: float = DEFAULT_TIMEOUT_MILLIS) -> bool:
        """Writes every span handed off so far to the spool (without sending) and waits.

        True once all of them are on disk within ``timeout_millis``; a span the spool could
        not take is dropped and counted (see :meth:`stats`). For receivers that acknowledge
        only what is durable, such as ``otel-gemini gateway``.
        """
        return self._pipeline.persist(max(0.0, timeout_millis / 1000))

    def shutdown(self, timeout_millis: float = DEFAULT_TIMEOUT_MILLIS) -> None:
        """Stops taking spans, writes what is in memory, sends what it can, and returns
        within ``timeout_millis``; whatever was not sent stays in the spool for the next
        start. Idempotent."""
        self._pipeline.shutdown(max(0.0, timeout_millis / 1000))

    def _at_exit(self, timeout: float) -> None:
        self.shutdown(timeout * 1000)

    # --- state ---

    def stats(self) -> ExportStats:
        """A consistent snapshot of counters and sender state (see :class:`ExportStats`)."""
        return self._pipeline.stats()

    # --- what a HealthReporter reads and sets (health/_reporter.py) ---

    def health_inputs(self) -> HealthInputs:
        """Loop states, the request timeout and how long Langfuse has not answered."""
        return self._pipeline.health_inputs()

    def credentials_confirmed(self) -> bool:
        """The health probe found the keys accepted: a 401/403 pause ends now."""
        return self._pipeline.credentials_confirmed()

    def set_status_extras(self, extras: Callable[[], dict[str, object]] | None) -> None:
        """What a health reporter adds to this exporter's status.json."""
        self._status_extras = extras
        self._pipeline.status_extras = extras

    @property
    def request_timeout(self) -> float:
        """Seconds one HTTP request to Langfuse may take."""
        return self._settings.request_timeout

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def public_key(self) -> str:
        return self._settings.public_key

    @property
    def secret_key(self) -> str:
        """For the health probe's authenticated check; never logged."""
        return self._settings.secret_key

    @property
    def spool_root(self) -> Path:
        """``OTEL_GEMINI_SPOOL_DIR`` (or the default): the directory holding the slots."""
        return self._settings.spool_dir

    @property
    def spool_directory(self) -> Path | None:
        """This process's slot directory (None in a forked child before its first span)."""
        spool = self._pipeline.spool
        return spool.directory if spool is not None else None

    def _after_fork_in_child(self) -> None:
        # Runs in the child right after fork(): no threads, no files created here (the
        # child may be about to exec); the child's pipeline starts on its first span.
        self._pipeline.forget_in_child()
        self._pipeline = Pipeline.for_child(self._settings)
        self._pipeline.status_extras = self._status_extras

    def __repr__(self) -> str:
        settings = self._settings
        spool_dir = str(settings.spool_dir)
        return f"LangfuseExporter(base_url={settings.base_url!r}, spool_dir={spool_dir!r})"


def spool_error(settings: ExporterSettings, error: OSError) -> LangfuseConfigError:
    """The one line naming the spool setting a directory problem comes from."""
    return LangfuseConfigError(
        f"cannot use the spool directory {settings.spool_dir} "
        f"({ENV_SPOOL_DIR} / spool_dir=): {error.strerror or error}"
    )


def check_spool(settings: ExporterSettings) -> None:
    """Raises the :class:`LangfuseConfigError` starting an exporter with ``settings`` would
    for its spool directory and slots, without creating or locking anything (a
    configuration check: ``otel-gemini gateway --check``)."""
    try:
        check_slots(Path(settings.spool_dir), settings.spool_slots)
    except OSError as error:
        raise spool_error(settings, error) from error
