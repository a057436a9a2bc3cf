"""Money, in one place: integers of 1e-15 USD ("femto-dollars") and their text and JSON forms.

Amounts are priced, summed and stored as femto-dollars, so a breakdown adds up to its total
exactly whatever the caller's ``decimal`` context; they become :class:`~decimal.Decimal`
(exact) or ``float`` (span attributes, metrics) only at the edge. Pricing writes
``langfuse.observation.cost_details`` with :func:`details_json`; the cost store and the Live
session total read it back with :func:`femto_from_text` / :func:`cost_details_femto`; the
OTTL generator converts prices with :func:`exact_femto`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

FEMTO_DIGITS: Final = 15
FEMTO_PER_USD: Final = 10**FEMTO_DIGITS
TOTAL: Final = "total"
"""The key of the total in cost and usage details (Langfuse sums a details object without
one as 0)."""

_QUANTUM: Final = Decimal(1)
# No cost is written with more characters than this: longer text is a peer's junk.
_MAX_AMOUNT_CHARS: Final = 64


def femto_text(amount: int) -> str:
    """A femto-dollar amount as a plain decimal string: ``674500000000`` → ``"0.0006745"``."""
    if 0 < amount < FEMTO_PER_USD:  # the usual case: less than a dollar
        return f"0.{amount:015d}".rstrip("0")
    if amount < 0:
        return "-" + femto_text(-amount)
    digits = str(amount)
    whole, fraction = digits[:-FEMTO_DIGITS] or "0", digits[-FEMTO_DIGITS:].rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def femto_decimal(amount: int) -> Decimal:
    """Femto-dollars → an exact USD decimal (``674500000000`` → ``Decimal('0.0006745')``)."""
    return Decimal(femto_text(amount))


def femto_float(amount: int) -> float:
    """Femto-dollars → the nearest float USD (span attributes and metrics)."""
    return amount / FEMTO_PER_USD


def to_femto(amount: Decimal) -> int:
    """USD → femto-dollars (rounded half-even beyond 15 decimals, which prices never reach)."""
    return int((amount * FEMTO_PER_USD).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN))


def exact_femto(amount: Decimal) -> int | None:
    """USD → whole femto-dollars, or ``None`` if that is not exact."""
    value = amount * FEMTO_PER_USD
    return int(value) if value == value.to_integral_value() else None


def femto_from_text(text: str) -> int | None:
    """A decimal number's text (``"0.00012"``, ``"1E-7"``) → femto-dollars (``None``: not a
    finite number). Plain decimals take integer arithmetic only (the common, fast case)."""
    if len(text) > _MAX_AMOUNT_CHARS:
        return None
    digits = text.lstrip("-")
    whole, _, fraction = digits.partition(".")
    if whole.isdigit() and (not fraction or fraction.isdigit()) and len(fraction) <= 15:
        amount = int(whole) * FEMTO_PER_USD + (int(fraction.ljust(15, "0")) if fraction else 0)
        return -amount if text.startswith("-") else amount
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    try:
        return to_femto(value)
    except ArithmeticError:  # "1E+999999": Overflow, or more digits than the context holds
        return None


def usd_text(amount: Decimal | None) -> str | None:
    """A USD amount as a plain decimal string for JSON (``None`` stays ``None``)."""
    if amount is None:
        return None
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


# JSON object templates by bucket names: '{"input":%s,"output":%s,"total":%s}'. Keys are our
# bucket names (plain ASCII) and values number literals, so no escaping is needed.
_TEMPLATES: dict[tuple[str, ...], str] = {}


def _template(keys: tuple[str, ...]) -> str:
    template = _TEMPLATES.get(keys)
    if template is None:
        template = "{" + ",".join(f'"{key}":%s' for key in (*keys, TOTAL)) + "}"
        if len(_TEMPLATES) < 1024:
            _TEMPLATES[keys] = template
    return template


def details_json(values: Mapping[str, object], total: object) -> str:
    """A details object ``{"bucket": value, ..., "total": total}`` with the values written
    as given (number literals: ``femto_text`` amounts or integer counts). Built from a
    template per key set: this runs for every priced span."""
    return _template(tuple(values)) % (*values.values(), total)


def cost_details_json(femto: Mapping[str, int], total: int) -> str:
    """``langfuse.observation.cost_details``: USD by bucket plus ``total``, exact decimals
    (each amount written by :func:`femto_text`; no intermediate mapping: per priced span)."""
    return _template(tuple(femto)) % (*map(femto_text, femto.values()), femto_text(total))


def cost_details_femto(text: str) -> dict[str, int]:
    """A ``cost_details`` JSON object → femto-dollars by key (``total`` included); raises
    ``ValueError`` for text that is not an object of decimal amounts."""
    details = json.loads(text, parse_float=Decimal, parse_int=Decimal)
    if not isinstance(details, dict):
        raise ValueError("cost details are not a JSON object")
    femto: dict[str, int] = {}
    for key, amount in details.items():
        value = femto_from_text(str(amount)) if isinstance(amount, Decimal) else None
        if value is None:
            raise ValueError(f"cost details: {key!r} is not a decimal amount")
        femto[key] = value
    return femto
