"""Python function calls added per Gemini call by our instrumentation vs the official one.

A deterministic companion to ``overhead.py``, whose CPU times move with a shared machine's
load: the same client, providers and calls as there, counted under ``cProfile`` (every Python
and C function call, ours and the OpenTelemetry SDK's). A count is no time (a C call costs
less than a Python one), but it does not drift between runs, so it shows whether a change
added work to the hot path.

    python benchmarks/overhead_calls.py [calls]
"""

from __future__ import annotations

import cProfile
import pstats
import sys
from collections.abc import Callable

from google import genai
from opentelemetry.instrumentation.google_genai import GoogleGenAiSdkInstrumentor
from overhead import providers, workloads

from otel_gemini import GeminiInstrumentor
from otel_gemini.testing import FakeGemini


def calls_per_call(fake: FakeGemini, reply: object, call: Callable[[], object], n: int) -> float:
    """Function calls per ``call()`` (after a warm-up), as cProfile counts them."""

    def run(times: int) -> None:
        for _ in range(times):
            fake.add(reply)  # type: ignore[arg-type]
            call()

    run(20)
    profile = cProfile.Profile()
    profile.enable()
    run(n)
    profile.disable()
    return pstats.Stats(profile).total_calls / n  # type: ignore[attr-defined,no-any-return]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tracer_provider, meter_provider = providers()
    fake = FakeGemini()
    client = fake.inprocess_client()
    print(f"google-genai {genai.__version__}; {n} calls each, function calls per call")
    for workload, (reply, call) in workloads(client).items():
        bare = calls_per_call(fake, reply, call, n)
        GeminiInstrumentor().instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider
        )
        ours = calls_per_call(fake, reply, call, n) - bare
        GeminiInstrumentor().uninstrument()
        official_instrumentor = GoogleGenAiSdkInstrumentor()
        official_instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, skip_dep_check=True
        )
        official = calls_per_call(fake, reply, call, n) - bare
        official_instrumentor.uninstrument()
        print(f"\n{workload}: uninstrumented {bare:.0f} calls/call")
        print(f"  otel-gemini adds {ours:7.1f}")
        print(f"  official    adds {official:7.1f}")
        print(f"  ratio ours/official: {ours / official:.2f}")


if __name__ == "__main__":
    main()
