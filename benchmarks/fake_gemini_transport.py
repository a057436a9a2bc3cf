"""Per-call cost of the fake Gemini: loopback HTTP versus in-process transports.

Prints the in-process time per call as a ratio of the loopback time measured in the same run.

    python benchmarks/fake_gemini_transport.py [calls]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from google import genai

from otel_gemini.testing import FakeGemini

MODEL = "gemini-2.5-flash"


def _median_seconds(call: Callable[[], object], calls: int) -> float:
    for _ in range(20):  # warm up connections and caches
        call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _operations(client: genai.Client) -> dict[str, Callable[[], object]]:
    return {
        "generate_content": lambda: client.models.generate_content(model=MODEL, contents="hello"),
        "stream (3 chunks)": lambda: list(
            client.models.generate_content_stream(model=MODEL, contents="hello a b")
        ),
    }


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with FakeGemini() as fake:
        loopback = _operations(fake.client())
        inprocess = _operations(fake.inprocess_client())
        print(f"google-genai {genai.__version__}, median of {calls} calls")
        for name in loopback:
            base = _median_seconds(loopback[name], calls)
            fake.reset()
            fast = _median_seconds(inprocess[name], calls)
            fake.reset()
            print(
                f"{name:18} loopback {base * 1e3:6.2f} ms  in-process {fast * 1e3:6.2f} ms"
                f"  ratio {fast / base:.2f}"
            )


if __name__ == "__main__":
    main()
