"""Durable OTLP export to Langfuse.

``LangfuseExporter`` hands spans off in memory, keeps them in a crash-safe on-disk spool
and sends them with retries; ``SpoolingSpanProcessor`` is the processor to register.
See docs/export.md.
"""

from otel_gemini.export._accounting import DROP_REASONS, ExportStats
from otel_gemini.export._exporter import LangfuseExporter
from otel_gemini.export._processor import SpoolingSpanProcessor
from otel_gemini.export._retry import RetryPolicy
from otel_gemini.export._settings import LangfuseConfigError
from otel_gemini.export._slots import SpoolBusyError

__all__ = [
    "DROP_REASONS",
    "ExportStats",
    "LangfuseConfigError",
    "LangfuseExporter",
    "RetryPolicy",
    "SpoolBusyError",
    "SpoolingSpanProcessor",
]

# The internal interface other otel_gemini packages use (the health command reads spools,
# serve and the gateway resolve exporter settings, the health probe authenticates). Not in
# __all__: not for users. (``import X as X``: an intended re-export.)
from otel_gemini.export._exporter import check_spool as check_spool
from otel_gemini.export._settings import ENV_SPOOL_DIR as ENV_SPOOL_DIR
from otel_gemini.export._settings import ExporterOptions as ExporterOptions
from otel_gemini.export._settings import default_spool_dir as default_spool_dir
from otel_gemini.export._settings import resolve_settings as resolve_settings
from otel_gemini.export._slots import slot_directories as slot_directories
from otel_gemini.export._slots import slot_owner as slot_owner
from otel_gemini.export._spool import read_backlog as read_backlog
from otel_gemini.export._transport import basic_auth as basic_auth
