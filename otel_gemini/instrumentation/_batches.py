"""Batch jobs (``client.batches.create`` / ``get``), whose requests run later at the batch price.

A job's requests are billed each with its own usage, at the batch rate (half the standard
one on most models), and that usage reaches the client once: in the job's inlined responses,
when a get returns it finished. So ``create`` (its HTTP request: ``Batches._create``) gets a
``create_batch {model}`` span without usage, and the first get in this process that returns
the job finished records each inlined response as a generation (``_pending_generations``):
a child of the create span, from the create to the job's end time, with its usage and
``otel_gemini.request.service_tier=batch``, priced once. Gets make no spans (a job is polled
for minutes to hours). Jobs whose results go to a file (or, on Vertex AI, to Cloud Storage or
BigQuery) give the client no usage: their requests are not recorded.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.util.types import AttributeValue
from wrapt import wrap_function_wrapper

from otel_gemini import _attributes as attrs
from otel_gemini._model_names import bare_model_name
from otel_gemini._trace_attributes import current_trace_attributes
from otel_gemini.instrumentation._fields import field
from otel_gemini.instrumentation._generate_content import GenerateContentRecorder
from otel_gemini.instrumentation._instruments import Instruments
from otel_gemini.instrumentation._internal_errors import report_internal_error
from otel_gemini.instrumentation._invocation import Invocation
from otel_gemini.instrumentation._operations import SpanWrappers, client_attributes, is_async
from otel_gemini.instrumentation._pending_generations import (
    PendingGenerations,
    pending_generation,
    record_generation,
)

_MODULE = "google.genai.batches"
_CLASSES = ("Batches", "AsyncBatches")
# Job states after which the job's results are final.
_FINISHED = frozenset(
    (
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
    )
)


def _state(job: Any) -> str | None:
    state = field(job, "state")
    name = getattr(state, "name", state)  # the SDK's JobState enum, or its value
    return name if isinstance(name, str) else None


class _JobRecorder:
    """The created job's name and state."""

    __slots__ = ("name", "state")

    def __init__(self) -> None:
        self.name: str | None = None
        self.state: str | None = None

    def add(self, response: Any) -> None:
        name = field(response, "name")
        if isinstance(name, str) and name:
            self.name = name
        self.state = _state(response)

    def attributes(self) -> Mapping[str, AttributeValue]:
        result: dict[str, AttributeValue] = {}
        if self.name:
            result[attrs.GEN_AI_RESPONSE_ID] = self.name
        if self.state:
            result[attrs.BATCH_STATE] = self.state
        return result


class _ResultObserver:
    """wrapt wrappers, sync and async, that hand what a call returned to ``observe`` (which
    never raises) and return it unchanged."""

    def __init__(self, observe: Callable[[Any], None]) -> None:
        self._observe = observe

    def sync(self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any) -> Any:
        result = wrapped(*args, **kwargs)
        self._observe(result)
        return result

    async def async_(
        self, wrapped: Callable[..., Any], instance: Any, args: Any, kwargs: Any
    ) -> Any:
        result = await wrapped(*args, **kwargs)
        self._observe(result)
        return result


class BatchWrappers(SpanWrappers):
    """``create_batch {model}`` spans per create request, and the jobs' results on get."""

    def __init__(self, instruments: Instruments, pending: PendingGenerations) -> None:
        self._instruments = instruments
        self._pending = pending

    def _start(self, instance: Any, args: Any, kwargs: Any) -> Invocation | None:
        if not is_instrumentation_enabled():
            return None
        try:
            request = client_attributes(getattr(instance, "_api_client", None))
            model = bare_model_name(str(kwargs.get("model") or ""))
            request[attrs.GEN_AI_REQUEST_MODEL] = model
            request[attrs.SDK_METHOD] = attrs.SDK_METHOD_BATCHES_CREATE
            attributes = {
                **request,
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_CREATE_BATCH,
                attrs.LANGFUSE_OBSERVATION_TYPE: "span",
            }
            inlined = field(kwargs.get("src"), "inlined_requests")
            if isinstance(inlined, (list, tuple)):
                attributes[attrs.BATCH_REQUESTS] = len(inlined)
            # What each of the job's requests will be recorded with.
            generation = {
                **request,
                **current_trace_attributes(),
                attrs.GEN_AI_OPERATION_NAME: attrs.OP_GENERATE_CONTENT,
                attrs.REQUEST_SERVICE_TIER: attrs.SERVICE_TIER_BATCH,
            }
            recorder = _JobRecorder()
            return Invocation(
                self._instruments,
                f"{attrs.OP_CREATE_BATCH} {model}",
                attributes,
                recorder,
                on_finish=partial(
                    self._created, recorder, f"{attrs.OP_GENERATE_CONTENT} {model}", generation
                ),
            )
        except Exception as error:
            report_internal_error("start batches.create", error)
            return None

    def _created(
        self,
        recorder: _JobRecorder,
        name: str,
        generation: Mapping[str, AttributeValue],
        invocation: Invocation,
        result: Mapping[str, AttributeValue],
    ) -> None:
        if recorder.name is not None:
            self._pending.add(recorder.name, pending_generation(name, generation, invocation))

    def listed(self, page: Any) -> None:
        """Records the finished jobs of a list's page (a job polled by listing is billed too)."""
        try:
            for job in field(page, "batch_jobs") or ():
                self.fetched(job)
        except Exception as error:
            report_internal_error("record listed batch results", error)

    def fetched(self, job: Any) -> None:
        """Records a job's generations if it is finished and was created here, unrecorded."""
        try:
            name = field(job, "name")
            if not isinstance(name, str) or _state(job) not in _FINISHED:
                return
            pending = self._pending.take(name)
            if pending is None:
                return
            settings = self._instruments.settings
            end_time = field(job, "end_time")
            for inlined in field(field(job, "dest"), "inlined_responses") or ():
                response = field(inlined, "response")
                if response is None:
                    continue  # a request that failed: not billed
                recorder = GenerateContentRecorder(settings)
                recorder.add(response)
                record_generation(self._instruments, pending, recorder.attributes(), end_time, None)
        except Exception as error:
            report_internal_error("record batch results", error)


def instrument_batches(instruments: Instruments) -> list[tuple[Any, str]]:
    """Wraps the batch clients' ``_create``, ``get`` and ``_list`` (one page); returns what
    it patched."""
    try:
        module = importlib.import_module(_MODULE)
    except ImportError:
        return []
    wrappers = BatchWrappers(instruments, PendingGenerations())
    patched: list[tuple[Any, str]] = []
    for name in _CLASSES:
        cls = getattr(module, name, None)
        if cls is None or not all(method in cls.__dict__ for method in ("_create", "get", "_list")):
            continue
        asynchronous = is_async(cls.__dict__["_create"])
        for method, wrapper in (
            ("_create", wrappers),
            ("get", _ResultObserver(wrappers.fetched)),
            ("_list", _ResultObserver(wrappers.listed)),
        ):
            call = wrapper.async_ if asynchronous else wrapper.sync
            wrap_function_wrapper(_MODULE, f"{name}.{method}", call)
            patched.append((cls, method))
    return patched
