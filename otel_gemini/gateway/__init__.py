"""``otel-gemini gateway``: an OTLP receiver that prices spans and exports them to Langfuse.

Apps in any language (or an OpenTelemetry Collector tier) send OTLP here; the gateway runs
the same ``CostSpanProcessor`` as an in-process app and hands the spans to
``LangfuseExporter`` (durable spool, retries). ``GatewaySettings(security=ListenSecurity(
tokens=TokenFile(path), tls_cert=..., tls_key=...))`` puts both ports behind a bearer token
and TLS. See docs/collector.md and docs/security.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_gemini._listen_security import ListenSecurity
    from otel_gemini.gateway._gateway import Gateway, GatewaySettings

__all__ = ["Gateway", "GatewaySettings", "ListenSecurity"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the CLI imports this package's command module to build its
    # parser, and should not pay for the implementation then.
    if name not in __all__:
        raise AttributeError(f"module 'otel_gemini.gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module("otel_gemini.gateway._gateway"), name)
    globals()[name] = value
    return value
