"""``otel-gemini gateway``: an OTLP receiver that prices spans and exports them to Langfuse.

Apps in any language (or an OpenTelemetry Collector tier) send OTLP here; the gateway runs
the same ``CostSpanProcessor`` as an in-process app and hands the spans to
``LangfuseExporter`` (durable spool, retries). See docs/collector.md.
"""

from otel_gemini.gateway._gateway import Gateway, GatewaySettings

__all__ = ["Gateway", "GatewaySettings"]
