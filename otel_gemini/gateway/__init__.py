"""``otel-gemini gateway``: an OTLP receiver that prices spans and exports them to Langfuse.

Apps in any language (or an OpenTelemetry Collector tier) send OTLP here; the gateway runs
the same ``CostSpanProcessor`` as an in-process app and hands the spans to
``LangfuseExporter`` (durable spool, retries). ``GatewaySettings(security=ListenSecurity(
tokens=TokenFile(path), tls_cert=..., tls_key=...))`` puts both ports behind a bearer token
and TLS. See docs/collector.md and docs/security.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otel_gemini._lazy import lazy_exports

# Light (no grpc, no uvicorn): a configuration is checked without the ``[gateway]`` extra.
from otel_gemini._listen_security import ListenSecurity
from otel_gemini.gateway._settings import GatewaySettings

if TYPE_CHECKING:
    from otel_gemini.gateway._gateway import Gateway

__all__ = ["Gateway", "GatewaySettings", "ListenSecurity"]


# Loaded on first use: the CLI imports this package's command module to build its
# parser, and should not pay for the implementation then.
__getattr__ = lazy_exports(
    __name__, "otel_gemini.gateway._gateway", ["Gateway"], globals(), extra="gateway"
)
