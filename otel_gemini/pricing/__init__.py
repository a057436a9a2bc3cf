"""Gemini prices as dated data, and the cost of a usage.

``PriceTable.default()`` is the table shipped in ``otel_gemini/pricing/data/gemini.toml``;
``PriceTable.load(path)`` merges an override file over it (contract prices, per-minute audio…);
``PriceTable.from_env()`` does so when ``OTEL_GEMINI_PRICES`` names a file.
"""

from __future__ import annotations

from otel_gemini.pricing._cost import Cost
from otel_gemini.pricing._price_table import PriceTable
from otel_gemini.pricing._table_file import PriceTableError
from otel_gemini.pricing._usage import Usage

__all__ = ["Cost", "PriceTable", "PriceTableError", "Usage"]
