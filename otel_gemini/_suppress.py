"""Our own I/O is never traced: :func:`untraced` around each call that does it.

The app may have the httpx, requests or sqlite3 instrumentations on (``opentelemetry-bootstrap``
installs httpx's next to google-genai). Then each export POST would be a span, exported by the
next POST, itself a span: one application span became 72 in Langfuse within 8 s (issue 16).
The SDK's own exporters run under the same flag. Every OpenTelemetry instrumentation checks
it (``is_instrumentation_enabled``) before making a span; the HTTP-only flag is not needed,
as ``is_http_instrumentation_enabled`` checks this one first.

It is set around each of our calls, never for a whole thread of the app's: the app's own
requests stay traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from opentelemetry.instrumentation.utils import suppress_instrumentation

__all__ = ["suppress_instrumentation", "untraced"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def untraced(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """``function`` run with instrumentation suppressed: for the functions of ours that do
    network or SQLite I/O (one attach and detach of the context per call)."""

    @functools.wraps(function)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with suppress_instrumentation():
            return function(*args, **kwargs)

    return call
