// A Node.js app reporting Gemini generation spans the way a TypeScript service instrumented
// with the OpenTelemetry JS SDK would, exported over OTLP/HTTP (protobuf) to the endpoint in
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT. Usage: node app.js TRACES
// Prints one JSON line: {"traces": [trace ids], "spans": span count}.
"use strict";

const { context, trace } = require("@opentelemetry/api");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { BasicTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");

async function main() {
  const traces = Number(process.argv[2] || "3");
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "node-test-app" }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 50 })],
  });
  const tracer = provider.getTracer("node-test-app", "1.0.0");
  const ids = [];
  let spans = 0;
  for (let i = 0; i < traces; i++) {
    const root = tracer.startSpan("handle request");
    const parent = trace.setSpan(context.active(), root);
    for (const [input, output] of [[1000, 200], [2000, 400]]) {
      const generation = tracer.startSpan(
        "generate_content gemini-2.5-flash",
        {
          kind: 2, // CLIENT
          attributes: {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": "gcp.gemini",
            "gen_ai.request.model": "gemini-2.5-flash",
            "gen_ai.usage.input_tokens": input,
            "gen_ai.usage.output_tokens": output,
            "user.id": "node-user",
          },
        },
        parent,
      );
      generation.end();
      spans += 1;
    }
    root.end();
    spans += 1;
    ids.push(root.spanContext().traceId);
  }
  await provider.forceFlush();
  await provider.shutdown();
  process.stdout.write(JSON.stringify({ traces: ids, spans }) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
