"""Time our Live API instrumentation adds per received message, against an uninstrumented
session in the same run.

The real google-genai Live client receives voice sessions of 5 turns, each 100 audio messages
(40 ms of 24 kHz PCM) plus a usage and ``turnComplete`` message: 505 received messages.
Instrumented means ``GeminiInstrumentor`` with an SDK ``TracerProvider`` whose spans go
through ``CostSpanProcessor`` and a ``BatchSpanProcessor`` to an exporter that reads their
attributes, as ``configure()`` sets it up: pricing and export run on the export thread. We
measure the CPU time of the application's thread (``time.thread_time``), where the SDK and
the instrumentation run; it includes each turn's span work, spread over the turn's messages.
Two transports:

- **loopback**: the fake Gemini over WSS, in a child process (TLS, WebSocket, JSON, pydantic,
  and ours);
- **in-memory**: ``google.genai.live``'s WebSocket connect replaced by an in-memory socket
  that replays the same frames, so the figure is the SDK's message handling and ours, without
  the network (steadier on a shared machine).

Rounds alternate the two variants (ABBA order); the figures are medians over rounds of the
thread CPU time per received message, and the ratio and added time pair each instrumented
session with the uninstrumented one of its round.

    python benchmarks/live.py [rounds]
"""

from __future__ import annotations

import asyncio
import collections
import json
import multiprocessing
import os
import ssl
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from google import genai
from google.genai import live, types
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_gemini import CostSpanProcessor, GeminiInstrumentor, PriceTable
from otel_gemini.testing import (
    FakeGemini,
    LiveScript,
    LiveStep,
    ModelAudio,
    ScriptedUsage,
    TurnComplete,
    WaitFor,
    live_client_takes_ssl_context,
)

MODEL = "gemini-2.5-flash-native-audio-preview-09-2025"
TURNS = 5
CHUNKS_PER_TURN = 100
MESSAGES = TURNS * (CHUNKS_PER_TURN + 1)
USAGE = ScriptedUsage(
    prompt=400,
    candidates=100,
    prompt_by_modality={"TEXT": 300, "AUDIO": 100},
    candidates_by_modality={"AUDIO": 100},
)
TURN_STEPS: list[LiveStep] = [
    ModelAudio(0.04 * CHUNKS_PER_TURN, chunks=CHUNKS_PER_TURN),
    TurnComplete(usage=USAGE),
]
MIC_CHUNK = types.Blob(data=b"\x01\x00" * 1600, mime_type="audio/pcm;rate=16000")  # 0.1 s

Sample = tuple[float, float]  # CPU and wall seconds per received message


class _Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            dict(span.attributes or {})  # read them, so the cost processor prices
        return SpanExportResult.SUCCESS


async def _session(client: genai.Client) -> Sample:
    received = 0
    async with client.aio.live.connect(model=MODEL) as session:
        cpu_started, wall_started = time.thread_time(), time.perf_counter()
        for _ in range(TURNS):
            await session.send_realtime_input(audio=MIC_CHUNK)
            await session.send_realtime_input(audio_stream_end=True)
            async for _message in session.receive():
                received += 1
        cpu, wall = time.thread_time() - cpu_started, time.perf_counter() - wall_started
    assert received == MESSAGES, received
    return cpu / received, wall / received


# --- loopback: the fake Gemini in a child process -----------------------------------------------


def _serve(sessions: int, connection: Any) -> None:
    script = LiveScript(
        [step for _ in range(TURNS) for step in (WaitFor("audio_stream_end"), *TURN_STEPS)]
    )
    with FakeGemini(tls=True) as fake:
        for _ in range(sessions):
            fake.add_live_session(script)
        connection.send((fake.base_url, fake.ca_bundle()))
        connection.recv()  # the parent is done


def _loopback_client(base_url: str, ca_bundle: str) -> genai.Client:
    options: dict[str, Any] = {"base_url": base_url}
    if live_client_takes_ssl_context():
        context = ssl.create_default_context(cafile=ca_bundle)
        options["async_client_args"] = {"ssl": context, "verify": context}
        options["client_args"] = {"verify": context}
    else:  # google-genai 1.x: its Live client reads SSL_CERT_FILE
        os.environ["SSL_CERT_FILE"] = ca_bundle
    return genai.Client(api_key="fake-key", http_options=types.HttpOptions(**options))


# --- in-memory: the same frames without a network -----------------------------------------------


def _turn_frames() -> list[bytes]:
    return [
        json.dumps(message).encode()
        for step in TURN_STEPS
        for message in step.messages()  # type: ignore[union-attr]
    ]


class _MemoryWebSocket:
    """Answers ``setup`` and each ``audioStreamEnd`` with pre-encoded frames."""

    def __init__(self, turn: list[bytes]) -> None:
        self._turn = turn
        self._frames: collections.deque[bytes] = collections.deque()

    async def send(self, message: str) -> None:
        if '"setup"' in message[:16]:
            self._frames.append(b'{"setupComplete": {}}')
        elif "audioStreamEnd" in message:
            self._frames.extend(self._turn)

    async def recv(self, decode: bool | None = None) -> bytes:
        return self._frames.popleft()

    async def close(self) -> None:
        return None


def _in_memory_connect() -> Callable[..., Any]:
    turn = _turn_frames()

    @asynccontextmanager
    async def connect(uri: str, **kwargs: Any) -> AsyncIterator[_MemoryWebSocket]:
        yield _MemoryWebSocket(turn)

    return connect


# --- measuring ----------------------------------------------------------------------------------


def _measure(
    client: genai.Client, rounds: int, provider: TracerProvider
) -> dict[str, list[Sample]]:
    instrumentor = GeminiInstrumentor()
    variants: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
        "uninstrumented": (lambda: None, lambda: None),
        "otel-gemini": (
            lambda: instrumentor.instrument(tracer_provider=provider),
            lambda: instrumentor.uninstrument(),
        ),
    }
    results: dict[str, list[Sample]] = {name: [] for name in variants}
    asyncio.run(_session(client))  # warm up: imports, TLS, pydantic schemas
    for round_ in range(rounds):
        order = list(variants.items())
        for name, (start, stop) in order if round_ % 2 == 0 else reversed(order):
            start()
            try:
                results[name].append(asyncio.run(_session(client)))
            finally:
                stop()
    return results


def _report(title: str, results: dict[str, list[Sample]]) -> None:
    print(title)
    for name, samples in results.items():
        cpu = statistics.median(sample[0] for sample in samples)
        wall = statistics.median(sample[1] for sample in samples)
        print(f"  {name:15} {cpu * 1e6:7.1f} us CPU/message  {wall * 1e6:7.1f} us wall/message")
    pairs = list(zip(results["otel-gemini"], results["uninstrumented"], strict=True))
    ratio = statistics.median(ours[0] / base[0] for ours, base in pairs)
    added = statistics.median(ours[0] - base[0] for ours, base in pairs)
    print(f"  ratio otel-gemini / uninstrumented (CPU): {ratio:.3f}")
    print(f"  added by otel-gemini: {added * 1e6:.1f} us CPU per received message")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    provider = TracerProvider()
    provider.add_span_processor(
        CostSpanProcessor(BatchSpanProcessor(_Discard()), PriceTable.default())
    )
    header = f"{MESSAGES} received messages per session, {rounds} rounds (median)"

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(1 + 2 * rounds, child), daemon=True
    )
    server.start()
    cert_file = os.environ.get("SSL_CERT_FILE")
    try:
        loopback = _measure(_loopback_client(*parent.recv()), rounds, provider)
    finally:
        parent.send("done")
        server.join(10)
        if cert_file is None:  # the child's certificate is gone with it
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = cert_file
    _report(f"Live API over loopback WSS, {header}", loopback)

    original = live.ws_connect
    live.ws_connect = _in_memory_connect()
    try:
        client = genai.Client(api_key="fake-key")
        in_memory = _measure(client, rounds, provider)
    finally:
        live.ws_connect = original
    _report(f"Live API over an in-memory WebSocket, {header}", in_memory)
    provider.shutdown()


if __name__ == "__main__":
    main()
