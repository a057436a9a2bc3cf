"""Gemini prices as dated data, and the cost of a usage. (Placeholder: issue 3 fills this in.)"""

from __future__ import annotations


class Usage:
    """Token and audio usage of one request (placeholder)."""


class Cost:
    """The USD cost of one request (placeholder)."""


class PriceTable:
    """A dated Gemini price table (placeholder)."""


__all__ = ["Cost", "PriceTable", "Usage"]
