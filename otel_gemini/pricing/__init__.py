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

# The internal interface other otel_gemini packages use (the span reader, the cost processor,
# the OTTL generator), so none reaches into this package's private modules. Not in __all__:
# not for users. (``import X as X``: an intended re-export.)
from otel_gemini.pricing._buckets import BUCKET_SOURCES as BUCKET_SOURCES
from otel_gemini.pricing._buckets import INPUT_AUDIO as INPUT_AUDIO
from otel_gemini.pricing._buckets import OUTPUT_AUDIO as OUTPUT_AUDIO
from otel_gemini.pricing._buckets import SPLIT_STEPS as SPLIT_STEPS
from otel_gemini.pricing._buckets import TOKEN_BUCKETS as TOKEN_BUCKETS
from otel_gemini.pricing._buckets import Cap as Cap
from otel_gemini.pricing._buckets import Check as Check
from otel_gemini.pricing._buckets import Default as Default
from otel_gemini.pricing._buckets import SplitStep as SplitStep
from otel_gemini.pricing._buckets import split_tokens as split_tokens
from otel_gemini.pricing._price_table import STANDARD as STANDARD
from otel_gemini.pricing._price_table import STANDARD_NAMES as STANDARD_NAMES
from otel_gemini.pricing._price_table import model_family_name as model_family_name
from otel_gemini.pricing._price_table import (
    normalize_model_name as normalize_model_name,
)
from otel_gemini.pricing._usage import COUNT_FIELDS as COUNT_FIELDS
from otel_gemini.pricing._usage import (
    REPORTED_COUNT_FIELDS as REPORTED_COUNT_FIELDS,
)
from otel_gemini.pricing._usage import SECONDS_FIELDS as SECONDS_FIELDS
