"""The GenAI client metrics of finished calls, recorded on a background worker.

A finished call hands one small record (its instruments, the cached attribute sets, its
duration and time to first chunk, its final attributes, its span) to :func:`submit`: an
append to a bounded queue, which is all the application thread pays. A supervised
:class:`~otel_gemini._background.BatchWorker` (``otel-gemini-metrics``) records the points:
``gen_ai.client.operation.duration``, ``gen_ai.client.operation.time_to_first_chunk`` and
the input and output ``gen_ai.client.token.usage``.

Exact under any sampler: the record is handed over whether or not the span is recorded (a
sampled-out call's final attributes are even worked out on the worker, off the caller's
thread). Exemplars stay linked to the trace: each point is recorded with the call's own span
passed as its context, so the SDK's trace-based exemplar filter sees the span that was
sampled (or not), not the worker's empty context.

Exact at collection too: every meter that records these metrics also has an observable
instrument whose callback (the SDK runs callbacks at the start of each collection) records
what is still queued, so a reader never misses a call that finished before it collected.

Complete locally under any sampler: a call whose span is not recorded also goes, from here,
to the sink ``configure()`` registered for its tracer provider (``_unrecorded_calls``), which
prices it and writes it to the cost store.

Bounded: past :data:`MAX_PENDING` waiting records a call's metrics are dropped, counted and
logged once as the instrumentation error ``metrics queue full`` (health shows the counts).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, NamedTuple

from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.util.types import AttributeValue

from otel_gemini import _attributes as attrs
from otel_gemini._background import BatchWorker, LoopStatus, at_exit, fork_hooks
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._metric_points import MetricPoints
from otel_gemini.instrumentation._unrecorded_calls import (
    HAND_OVER_FAILED,
    UnrecordedCall,
    hand_over,
)

if TYPE_CHECKING:
    from otel_gemini.instrumentation._instruments import Instruments

MAX_PENDING: Final = 65_536
"""Records waiting for the worker at most (a few MB); past that a call's metrics are dropped."""
GATHER_SECONDS: Final = 0.05
"""How long the worker gathers records before recording them (one wake-up per batch)."""
QUEUE_FULL: Final = "metrics queue full"
RECORD_FAILED: Final = "record metrics"

FinalAttributes = Mapping[str, AttributeValue] | Callable[[], Mapping[str, AttributeValue]]
"""A call's final attributes, or (for a span that is not recorded) how to work them out."""


class MetricRecord(NamedTuple):
    """What a finished call hands the worker."""

    instruments: Instruments
    metric_points: MetricPoints
    result: FinalAttributes
    duration: float | None
    """Seconds; None: recorded already (a pending generation's tokens, after its create)."""
    time_to_first_chunk: float | None
    error: str | None
    """The failure's error type; None: whatever the final attributes report in-band."""
    span: trace.Span | None
    """The call's span: the points' context, for exemplars."""
    unrecorded: UnrecordedCall | None = None
    """Set when the span is not recorded: the call then goes to the pipeline's sink too (a
    generation recorded when its result arrived as well, with its own times)."""


class MetricQueue:
    """The process's one queue of metric records and the worker that records them."""

    def __init__(self) -> None:
        self._records: deque[MetricRecord] = deque()
        self._has_data = threading.Event()
        self._urgent = threading.Event()
        # Held while records are taken off the queue and recorded, so a collection that
        # records what is queued waits for the worker's batch in hand.
        self._recording = threading.Lock()
        self._start_lock = threading.Lock()
        self._worker: BatchWorker[None] | None = None
        self._pid = os.getpid()
        fork_hooks(after_in_child=self._forget_in_child)
        at_exit(self._flush_at_exit)

    def submit(self, record: MetricRecord) -> None:
        """Hands a finished call's record over (the application thread's only metric work)."""
        if self._worker is None:
            self._start()
        records = self._records
        if len(records) >= MAX_PENDING:
            report_internal_error(QUEUE_FULL, OverflowError(f"{MAX_PENDING} records waiting"))
            return
        records.append(record)
        if not self._has_data.is_set():
            self._has_data.set()

    def flush(self) -> None:
        """Records every queued record now, on the calling thread (a collection, a test, exit)."""
        with self._recording:
            records = self._records
            while records:
                try:
                    record = records.popleft()
                except IndexError:
                    return
                try:
                    record_points(record)
                except Exception as error:  # one bad record never stops the others
                    report_internal_error(RECORD_FAILED, error)

    def loop_status(self) -> LoopStatus | None:
        """The worker's state for health (None before the first call started it)."""
        worker = self._worker
        return worker.loop.status() if worker is not None else None

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is not None:
                return
            worker: BatchWorker[None] = BatchWorker(
                "metrics",
                has_data=self._has_data,
                urgent=self._urgent,
                delay=GATHER_SECONDS,
                drain=self._drain,
                process=self._process,
                pending=lambda: bool(self._records),
            )
            worker.start()
            self._worker = worker

    def _drain(self) -> None:
        # The records stay in the queue (where a collection can record them too) until
        # _process takes them under the lock; this only re-arms the wake-up.
        self._has_data.clear()
        self._urgent.clear()

    def _process(self, batch: None) -> None:
        self.flush()

    def _flush_at_exit(self, timeout: float) -> None:
        self.flush()

    def _forget_in_child(self) -> None:
        # The parent records what it queued; the worker thread does not exist in the child.
        self._records = deque()
        self._has_data = threading.Event()
        self._urgent = threading.Event()
        self._recording = threading.Lock()
        self._start_lock = threading.Lock()
        self._worker = None


def record_points(record: MetricRecord) -> None:
    """Records one finished call's points: its duration and time to first chunk, and unless
    it failed, its input and output tokens."""
    result = record.result
    if not isinstance(result, Mapping):
        result = result()
    error = record.error
    if error is None:
        reported = result.get(attrs.ERROR_TYPE)
        error = reported if isinstance(reported, str) else None
    response_model = result.get(attrs.GEN_AI_RESPONSE_MODEL)
    points = record.metric_points.outcome(
        response_model if isinstance(response_model, str) else None, error
    )
    instruments = record.instruments
    context = trace.set_span_in_context(record.span) if record.span is not None else None
    if record.duration is not None:
        instruments.operation_duration.record(record.duration, points.duration, context)
    if record.time_to_first_chunk is not None:
        instruments.time_to_first_chunk.record(record.time_to_first_chunk, points.duration, context)
    if error is None:
        input_tokens = result.get(attrs.GEN_AI_USAGE_INPUT_TOKENS)
        if isinstance(input_tokens, int):
            instruments.token_usage.record(input_tokens, points.input_tokens, context)
        output_tokens = result.get(attrs.GEN_AI_USAGE_OUTPUT_TOKENS)
        if isinstance(output_tokens, int):
            instruments.token_usage.record(output_tokens, points.output_tokens, context)
    unrecorded = record.unrecorded
    if unrecorded is not None:
        try:
            hand_over(
                unrecorded,
                instruments.tracer_provider,
                record.span,
                result,
                error,
                record.duration,
                record.time_to_first_chunk,
            )
        except Exception as failure:  # the points above are recorded whatever happens here
            report_internal_error(HAND_OVER_FAILED, failure)


QUEUE: Final = MetricQueue()


def metrics_loops() -> list[LoopStatus]:
    """The metrics worker's loop, for health (none before a call started it)."""
    status = QUEUE.loop_status()
    return [status] if status is not None else []


def flush_finished_calls() -> None:
    """Records the metrics of every call finished so far, and hands those whose span was not
    recorded to their pipeline, on the calling thread (``Telemetry.force_flush``)."""
    QUEUE.flush()


def record_queued_on_collect(options: CallbackOptions) -> Iterable[Observation]:
    """An observable instrument's callback: the SDK runs it as a collection starts, so the
    points of every call finished by then are recorded before the collection reads them."""
    QUEUE.flush()
    return ()
