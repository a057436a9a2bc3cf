"""pytest fixtures for testing code that calls Gemini or exports to Langfuse.

Installed as a pytest plugin (entry point ``pytest11``), so the fixtures are available in any
project that has ``otel-gemini`` installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# The fakes are imported inside the fixtures: pytest loads this plugin in every environment
# with otel-gemini installed, with or without the ``testing`` extra the fakes need.
if TYPE_CHECKING:
    from google import genai

    from otel_gemini.testing import FakeGemini, FakeLangfuse

# --- fake Gemini fixtures ---


@pytest.fixture(scope="session")
def fake_gemini_server() -> Iterator[FakeGemini]:
    """One fake Gemini server for the whole session (prefer ``fake_gemini``, reset per test)."""
    from otel_gemini.testing import FakeGemini

    with FakeGemini() as server:
        yield server


@pytest.fixture
def fake_gemini(fake_gemini_server: FakeGemini) -> Iterator[FakeGemini]:
    """The session's fake Gemini server with an empty script queue and no recorded requests."""
    fake_gemini_server.reset()
    yield fake_gemini_server
    fake_gemini_server.reset()


@pytest.fixture
def gemini_client(fake_gemini: FakeGemini) -> genai.Client:
    """A real Gemini Developer API client pointed at ``fake_gemini``."""
    return fake_gemini.client()


@pytest.fixture
def gemini_vertex_client(fake_gemini: FakeGemini) -> genai.Client:
    """A real Vertex AI client (fake project and credentials) pointed at ``fake_gemini``."""
    return fake_gemini.client(vertexai=True)


@pytest.fixture(scope="session")
def fake_gemini_live_server() -> Iterator[FakeGemini]:
    """One fake Gemini over HTTPS (a self-signed certificate) for the session: the Live API
    needs ``wss://`` (prefer ``fake_gemini_live``)."""
    from otel_gemini.testing import FakeGemini

    with FakeGemini(tls=True) as server:
        yield server


@pytest.fixture
def fake_gemini_live(
    fake_gemini_live_server: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeGemini]:
    """The session's TLS fake Gemini, reset, whose certificate clients trust: google-genai 3.x
    clients from ``client()`` are given an SSL context; for 1.x, whose Live client takes none,
    ``SSL_CERT_FILE`` points at a bundle with the certificate for the test."""
    from otel_gemini.testing import live_client_takes_ssl_context

    if not live_client_takes_ssl_context():
        monkeypatch.setenv("SSL_CERT_FILE", fake_gemini_live_server.ca_bundle())
    fake_gemini_live_server.reset()
    yield fake_gemini_live_server
    fake_gemini_live_server.reset()


@pytest.fixture
def gemini_live_client(fake_gemini_live: FakeGemini) -> genai.Client:
    """A real Gemini Developer API client for ``fake_gemini_live`` (REST and Live API)."""
    return fake_gemini_live.client()


# --- fake Langfuse fixtures ---


ALLOW_DUPLICATE_SPANS = "allow_duplicate_spans"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{ALLOW_DUPLICATE_SPANS}: the fake_langfuse fixture accepts a span id received twice "
        "(at-least-once delivery on purpose, e.g. a crash with a batch in flight)",
    )


@pytest.fixture
def fake_langfuse(request: pytest.FixtureRequest) -> Iterator[FakeLangfuse]:
    """A fake Langfuse for one test (its own port, behaviour and recordings).

    The test fails at teardown if the fake accepted any span id twice (a double export),
    unless it is marked ``@pytest.mark.allow_duplicate_spans``.
    """
    from otel_gemini.testing import FakeLangfuse

    with FakeLangfuse() as server:
        yield server
        duplicates = server.duplicate_span_ids
    if duplicates and request.node.get_closest_marker(ALLOW_DUPLICATE_SPANS) is None:
        shown = ", ".join(f"{span}x{n}" for (_, span), n in list(duplicates.items())[:5])
        pytest.fail(
            f"the fake Langfuse received {len(duplicates)} span id(s) more than once "
            f"({shown}); mark the test allow_duplicate_spans if that is intended",
            pytrace=False,
        )


@pytest.fixture
def fake_langfuse_env(
    fake_langfuse: FakeLangfuse,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> FakeLangfuse:
    """``fake_langfuse`` with ``LANGFUSE_*`` and a fresh ``OTEL_GEMINI_SPOOL_DIR`` in the
    environment, for code that reads its settings there (``configure()``)."""
    from otel_gemini.export import ENV_SPOOL_DIR

    monkeypatch.delenv("LANGFUSE_HOST", raising=False)
    for name, value in fake_langfuse.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ENV_SPOOL_DIR, str(tmp_path_factory.mktemp("spool")))
    return fake_langfuse
