"""``otel-gemini demo`` (the README's first command) end to end, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.genai

# Each user's cost, worked out by hand from the demo's scripted usage and the price table:
# ana: gemini-2.5-flash ($0.30 in, $0.03 cached, $2.50 out incl. thinking per 1M tokens)
#   42*0.30 + 150*2.50 + 190*0.30 + 117*2.50 + 182*0.30 + 128*0.03 + 60*2.50 = 945.54 (e-6)
# ben: flash stream 25*0.30 + 220*2.50 = 557.5; gemini-2.5-pro 2400*1.25 + 570*10 = 8700
# chen: flash AFC hops 215*0.30 + 40*2.50 = 164.5; gemini-2.5-flash-lite 60*0.10 + 1*0.40 = 6.4
# dana: native-audio Live turns, text in 0.50, audio in 3.00, audio out 12.00:
#   155*0.50 + 25*3 + 50*12 + 215*0.50 + 50*3 + 38*12 = 1466
# eve: one HTTP 503, billed nothing
EXPECTED_BY_USER = {
    "ana": Decimal("0.00094554"),
    "ben": Decimal("0.0092575"),
    "chen": Decimal("0.0001709"),
    "dana": Decimal("0.001466"),
    "eve": Decimal("0"),
}
TOTAL = Decimal("0.01183994")


def _cli(*arguments: str, home: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("LANGFUSE_", "OTEL_", "GEMINI_", "GOOGLE_"))
    }
    environment["HOME"] = str(home)  # nothing lands in the real home directory
    return subprocess.run(
        [sys.executable, "-m", "otel_gemini.cli", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_demo_prices_every_call_and_langfuse_gets_the_same_total(tmp_path: Path) -> None:
    db = tmp_path / "costs.sqlite3"
    demo = _cli("demo", "--db", str(db), home=tmp_path)
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    assert "Traceback" not in demo.stderr
    for line in (
        "ana   chats with gemini-2.5-flash: 3 turns",
        "chen  asks gemini-2.5-flash, which calls a Python tool: tool called",
        "dana  talks to gemini-2.5-flash-native-audio-preview-09-2025 (Live API): 2 spoken turns",
        "eve   asks gemini-2.5-flash while it is overloaded: failed as scripted (HTTP 503)",
        "Pipeline health: healthy; spans accepted 14, sent 14, dropped 0, queued 0",
        f"Langfuse received 10 priced generations costing ${TOTAL} in all: matches the local "
        f"store's total of ${TOTAL}.",
    ):
        assert line in out

    # The kept store answers the same through `otel-gemini costs`.
    costs = _cli("costs", "--db", str(db), "--by", "user", "--json", home=tmp_path)
    assert costs.returncode == 0, costs.stderr
    report = json.loads(costs.stdout)
    assert {group["user"]: Decimal(group["cost"]) for group in report["groups"]} == (
        EXPECTED_BY_USER
    )
    assert Decimal(report["total"]["cost"]) == TOTAL
    assert (report["total"]["requests"], report["total"]["errors"]) == (11, 1)


def test_real_services_without_keys_are_refused_naming_them(tmp_path: Path) -> None:
    demo = _cli("demo", "--langfuse", "real", home=tmp_path)
    assert demo.returncode == 2
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY" in demo.stderr
    demo = _cli("demo", "--gemini", "real", home=tmp_path)
    assert demo.returncode == 2
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in demo.stderr
