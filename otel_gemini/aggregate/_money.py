"""Money in the store: integers of 1e-15 USD, summed exactly, shown as decimal strings.

SQLite has no decimal type and its ``sum()`` of integers stops at 2**63 (about $9,223 in
femto-dollars), so amounts are stored per row as femto-dollars and summed as two parts
(whole micro-dollars and the remainder), put back together exactly in Python.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from otel_gemini.pricing._cost import FEMTO_PER_USD, femto_text

FEMTO: Final = FEMTO_PER_USD
SPLIT: Final = 10**9
"""Femto-dollars per micro-dollar: the unit of the high part of a split sum."""
_QUANTUM: Final = Decimal(1)
_MAX_AMOUNT_CHARS: Final = 64


def to_femto(amount: Decimal) -> int:
    """USD → femto-dollars (rounded half-even beyond 15 decimals, which prices never reach)."""
    return int((amount * FEMTO).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN))


def femto_from_text(text: str) -> int | None:
    """A decimal number's text (``"0.00012"``, ``"1E-7"``) → femto-dollars (``None``: not a
    finite number). Plain decimals take integer arithmetic only (the common, fast case)."""
    if len(text) > _MAX_AMOUNT_CHARS:
        return None  # no cost is written with that many characters: a peer's junk
    digits = text.lstrip("-")
    whole, _, fraction = digits.partition(".")
    if whole.isdigit() and (not fraction or fraction.isdigit()) and len(fraction) <= 15:
        amount = int(whole) * FEMTO + (int(fraction.ljust(15, "0")) if fraction else 0)
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


def femto_decimal(amount: int) -> Decimal:
    """Femto-dollars → an exact USD decimal (``674500000000`` → ``Decimal('0.0006745')``)."""
    return Decimal(femto_text(amount))


def split_sum_sql(column: str) -> str:
    """SQL for the two parts of an exact sum of a femto-dollar column (see the module doc)."""
    return f"sum({column} / {SPLIT}), sum({column} % {SPLIT}), count({column})"


def joined(high: int | None, low: int | None, count: int) -> int | None:
    """The exact femto-dollar sum from :func:`split_sum_sql`'s parts (``None``: no values)."""
    if not count:
        return None
    return int(high or 0) * SPLIT + int(low or 0)


def usd_text(amount: Decimal | None) -> str | None:
    """A USD amount as a plain decimal string for JSON (``None`` stays ``None``)."""
    if amount is None:
        return None
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"
