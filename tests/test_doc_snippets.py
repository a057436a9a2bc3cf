"""The Python in README.md, docs/costs.md and docs/configuration.md runs as written.

Each ```python block runs in a fresh interpreter (``configure()`` sets process-wide state)
against the fake Gemini and the fake Langfuse, reached the way a user's environment would
point at real ones: ``GOOGLE_GEMINI_BASE_URL`` (honoured by google-genai) and ``LANGFUSE_*``.
A block that is only a fragment is marked ``<!-- not run: reason -->`` on the line before
its fence; the reason is required.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_gemini.testing import FakeGemini, FakeLangfuse

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/costs.md", "docs/configuration.md")
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!-- not run: (?P<reason>\S.*?) -->\s*$")


def _blocks() -> Iterator[object]:
    for document in DOCUMENTS:
        text = (REPO / document).read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marks = [
                pytest.mark.skip(reason=f"marked not run: {not_run.group('reason')}")
                for not_run in [_NOT_RUN.search(before)]
                if not_run
            ]
            if "not run" in before and not marks:
                raise AssertionError(f"{document}:{line}: write <!-- not run: reason -->")
            yield pytest.param(match.group(1), id=f"{document}:{line}", marks=marks)


@pytest.fixture
def environment(tmp_path: Path) -> Iterator[dict[str, str]]:
    with FakeGemini() as gemini, FakeLangfuse() as langfuse:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("LANGFUSE_", "OTEL_", "GEMINI_", "GOOGLE_"))
        }
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "GEMINI_API_KEY": "fake-key",
                "GOOGLE_GEMINI_BASE_URL": gemini.base_url,
                **langfuse.environment(),
                "OTEL_GEMINI_SPOOL_DIR": str(tmp_path / "spool"),
                "OTEL_GEMINI_COST_DB": str(tmp_path / "costs.sqlite3"),
            }
        )
        yield env


@pytest.mark.parametrize("code", list(_blocks()))
def test_the_python_in_the_docs_runs_as_written(
    code: str, environment: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    # README prints the health status: the word a reader expects, not the enum's repr.
    if "health().status" in code:
        assert done.stdout.strip() == "healthy", done.stdout
