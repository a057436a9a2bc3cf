"""Opt-in enforcement: the set of exhausted scopes, and the check a request makes before it
is sent.

The evaluator (on its worker thread) replaces :data:`_state`'s mapping whole whenever it
changes; the application's thread only reads it. With nothing exhausted, which is the usual
case, a request pays one attribute read and one truth test; with scopes exhausted, one
dictionary lookup per scope kind the request has (total, service, model, user, session, tags).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Final, NamedTuple

from otel_gemini import _attributes as attrs
from otel_gemini._trace_attributes import current_trace_attributes
from otel_gemini.budgets._rules import (
    SCOPE_MODEL,
    SCOPE_SERVICE,
    SCOPE_SESSION,
    SCOPE_TAG,
    SCOPE_TOTAL,
    SCOPE_USER,
)
from otel_gemini.pricing import model_family_name

_logger = logging.getLogger("otel_gemini.budgets")

TOTAL_VALUE: Final = "*"
"""The scope value of a ``total`` rule (one value: everything)."""

ScopeKey = tuple[str, str]
"""(scope kind, scope value): ``("user", "u-42")``, ``("total", "*")``, ``("tag", "voice")``."""


class Exhaustion(NamedTuple):
    """Why a scope is closed: the rule, and until when."""

    rule: str
    scope: str
    scope_value: str
    period_end: datetime
    spend_usd: str
    limit_usd: str
    until: float = float("inf")
    """``period_end`` in the evaluator's clock (Unix seconds): past it the scope is open,
    even if no evaluation has run since (a stalled worker, a forked child's copy)."""


class BudgetExceededError(Exception):
    """Raised by an instrumented google-genai call, before anything is sent, when budget
    enforcement is on and the call's scope (user, session, model, service, tag or total) is
    at or over a rule's hard limit in the current period. Nothing was billed.

    Attributes: ``rule``, ``scope``, ``scope_value``, ``period_end`` (when the scope opens
    again), ``spend_usd`` and ``limit_usd`` (exact decimal strings).
    """

    def __init__(self, exhaustion: Exhaustion) -> None:
        self.rule = exhaustion.rule
        self.scope = exhaustion.scope
        self.scope_value = exhaustion.scope_value
        self.period_end = exhaustion.period_end
        self.spend_usd = exhaustion.spend_usd
        self.limit_usd = exhaustion.limit_usd
        super().__init__(
            f"budget {exhaustion.rule!r} is exhausted for {exhaustion.scope} "
            f"{exhaustion.scope_value!r}: ${exhaustion.spend_usd} of ${exhaustion.limit_usd} "
            f"until {exhaustion.period_end.isoformat()}"
        )


_NONE: Final[dict[ScopeKey, Exhaustion]] = {}  # never changed
_TOTAL: Final = (SCOPE_TOTAL, TOTAL_VALUE)


class _State:
    __slots__ = (
        "clock",
        "exhausted",
        "live_sessions",
        "lock",
        "logged_error",
        "refused",
        "service_name",
    )

    def __init__(self) -> None:
        # Replaced whole, never changed in place: readers need no lock (a plain dict, as
        # its get() is the fastest lookup there is).
        self.exhausted: dict[ScopeKey, Exhaustion] = _NONE
        self.refused = 0
        self.logged_error = False
        self.clock: Callable[[], float] = time.time
        self.service_name: str | None = None
        self.lock = threading.Lock()
        self.live_sessions: weakref.WeakKeyDictionary[object, _LiveWatch] = (
            weakref.WeakKeyDictionary()
        )


_state = _State()


class _LiveWatch(NamedTuple):
    keys: tuple[ScopeKey, ...]
    notify: Callable[[Exhaustion], None]
    notified: set[str]


def _request_keys(model: str | None) -> list[ScopeKey]:
    keys: list[ScopeKey] = [_TOTAL]
    if _state.service_name:
        keys.append((SCOPE_SERVICE, _state.service_name))
    if model:
        # As the evaluator names a model (an exhausted model's aliases are closed with it).
        keys.append((SCOPE_MODEL, model_family_name(model)))
    values = current_trace_attributes()
    user = values.get(attrs.USER_ID)
    if isinstance(user, str):
        keys.append((SCOPE_USER, user))
    session = values.get(attrs.SESSION_ID)
    if isinstance(session, str):
        keys.append((SCOPE_SESSION, session))
    tags = values.get(attrs.LANGFUSE_TRACE_TAGS)
    if isinstance(tags, (list, tuple)):
        keys.extend((SCOPE_TAG, str(tag)) for tag in tags)
    return keys


def check_request(model: object) -> None:
    """Raises :class:`BudgetExceededError` if the request about to be sent (for ``model``,
    in the current ``trace_attributes()`` context) falls in an exhausted scope."""
    exhausted = _state.exhausted
    if exhausted:
        _check(exhausted, model if isinstance(model, str) else None)


def _check(exhausted: dict[ScopeKey, Exhaustion], model: str | None) -> None:
    # One lookup per scope kind the request has (the list is built only when something is
    # exhausted). Only the refusal itself may reach the caller: a bug here lets it through.
    try:
        keys = _request_keys(model)
    except Exception:
        if not _state.logged_error:
            _state.logged_error = True
            _logger.warning(
                "otel-gemini: the budget check failed (logged once); the request goes through",
                exc_info=True,
            )
        return
    for key in keys:
        hit = exhausted.get(key)
        if hit is not None and _state.clock() < hit.until:
            _state.refused += 1  # health's count (a rare race may miss one: no lock here)
            raise BudgetExceededError(hit)


def refused_requests() -> int:
    """Requests refused by enforcement in this process so far."""
    return _state.refused


def watch_live_session(
    owner: object, model: str | None, notify: Callable[[Exhaustion], None]
) -> None:
    """Calls ``notify`` (once per rule) when a scope of the open Live session ``owner``
    becomes exhausted; the session itself is never cut (see docs/budgets.md)."""
    with _state.lock:
        _state.live_sessions[owner] = _LiveWatch(tuple(_request_keys(model)), notify, set())


def forget_live_session(owner: object) -> None:
    with _state.lock:
        _state.live_sessions.pop(owner, None)


def publish(
    exhausted: Mapping[ScopeKey, Exhaustion],
    service_name: str | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """The evaluator's side: the scopes now closed to new requests (replaces the last set),
    then tells open Live sessions that fall in one. ``clock`` is the evaluator's (Unix
    seconds), against which each scope's ``until`` is checked."""
    _state.service_name = service_name
    _state.clock = clock
    _state.exhausted = dict(exhausted) if exhausted else _NONE
    if not exhausted:
        return
    with _state.lock:
        watches = list(_state.live_sessions.values())
    for watch in watches:
        for key in watch.keys:
            hit = exhausted.get(key)
            if hit is None or hit.rule in watch.notified:
                continue
            watch.notified.add(hit.rule)
            try:
                watch.notify(hit)
            except Exception:
                _logger.debug("otel-gemini: a live session's budget notice failed", exc_info=True)


def exhausted_scopes() -> Mapping[ScopeKey, Exhaustion]:
    """The scopes closed now."""
    return MappingProxyType(_state.exhausted)
