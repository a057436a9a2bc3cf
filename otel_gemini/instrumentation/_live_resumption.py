"""Following a Live session across connections: session resumption and ``goAway``.

The Live API closes a connection after a while (it warns with ``goAway`` first) and lets the
client resume the session on a new connection with the latest handle the server sent in a
``sessionResumptionUpdate``. Each connection is its own session span; a resumed one carries a
link to the session span that received its handle, so the conversation can be followed.

A handle resumes a session, so it is treated like a credential: only a digest of it is kept
(in memory, for the link), and it is never written to a span.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

from opentelemetry.trace import SpanContext

MAX_HANDLES = 1024
"""Handles remembered at once (the most recent ones): enough for many concurrent calls."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _digest(handle: str) -> bytes:
    return hashlib.sha256(handle.encode("utf-8", "surrogatepass")).digest()


class ResumptionHandles:
    """Which session span received which resumption handle (by digest); past ``max_handles``
    the oldest is forgotten. Thread-safe: sessions may run on event loops in other threads."""

    def __init__(self, max_handles: int = MAX_HANDLES) -> None:
        self._max = max_handles
        self._sessions: OrderedDict[bytes, SpanContext] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, handle: str, session: SpanContext) -> None:
        key = _digest(handle)
        with self._lock:
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max:
                self._sessions.popitem(last=False)

    def find(self, handle: str) -> SpanContext | None:
        with self._lock:
            return self._sessions.get(_digest(handle))

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)


handles = ResumptionHandles()
"""The process's handles (one Live API per process)."""


def duration_seconds(text: object) -> float | None:
    """Seconds in a protobuf JSON duration (``"10s"``, ``"1.5s"``); None if it is not one."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text)
    return float(match.group(1)) if match else None
